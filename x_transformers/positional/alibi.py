"""ALiBi: attention with linear biases ("Train Short, Test Long", 2108.12409).

Head ``h`` adds ``-m_h * (query_position - key_position)`` to its scores. The slopes are the
paper's geometric sequence ``m_h = 2^(-8 (h + 1) / n)`` for ``n`` a power of two; otherwise the
``2^floor(log2 n)`` slopes followed by every other slope of the ``2 * 2^floor(log2 n)`` sequence.
With ``alibi_num_heads = n < heads`` only the first ``n`` heads get a bias (slopes computed for
``n`` heads); the others can attend far away.

The paper's bias is causal. For a bidirectional ``Encoder`` we use a non-symmetric variant with
separate slopes for the two directions (the forward / backward form of "BiPE-ALiBi", see also
ofirpress/attention_with_linear_biases#5): keys in the past are penalised by ``m_h``, keys in the
future by the same geometric sequence in reverse head order, ``m_{n-1-h}``. A head that is local
looking back is therefore global looking ahead, so heads can tell left from right (symmetric
ALiBi cannot), and the bias stays linear in the distance, so it extrapolates the same way.

No parameters. Shape letters: h heads, i queries, j keys.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .span import PositionSpan


def alibi_slopes(num_heads: int) -> list[float]:
    """The paper's per-head slopes (largest first)."""
    if num_heads < 1:
        raise ValueError(f"ALiBi needs at least one head, got {num_heads}")

    def power_of_two_slopes(n: int) -> list[float]:
        ratio = 2.0 ** (-8.0 / n)
        return [ratio ** (k + 1) for k in range(n)]

    closest = 2 ** math.floor(math.log2(num_heads))
    if closest == num_heads:
        return power_of_two_slopes(num_heads)
    return power_of_two_slopes(closest) + alibi_slopes(2 * closest)[0::2][: num_heads - closest]


class AlibiPositionalBias(nn.Module):
    """(h, i, j) linear distance bias on the first ``num_alibi_heads`` of ``heads`` heads."""

    def __init__(self, heads: int, *, causal: bool, num_alibi_heads: int | None = None):
        super().__init__()
        num_alibi_heads = heads if num_alibi_heads is None else num_alibi_heads
        if not 1 <= num_alibi_heads <= heads:
            raise ValueError(
                f"'alibi_num_heads' must be in [1, heads={heads}], got {num_alibi_heads}"
            )
        self.heads, self.num_alibi_heads, self.causal = heads, num_alibi_heads, causal
        self.backward_slopes = alibi_slopes(num_alibi_heads)
        self.forward_slopes = self.backward_slopes[::-1]

    def forward(self, span: PositionSpan, device: torch.device, dtype: torch.dtype) -> Tensor:
        """(h, i, j) bias in ``dtype``; zero for heads beyond ``num_alibi_heads``; (b, h, i, j)
        with per-row explicit positions."""
        distances = span.distances(device).to(dtype)  # (i, j), > 0 for keys in the past
        distances = distances.unsqueeze(-3)  # (..., 1, i, j): one slope per head
        backward = torch.tensor(self.backward_slopes, device=device, dtype=dtype)[:, None, None]
        if self.causal:  # future keys are masked; |d| keeps the bias finite and tidy there
            bias = -backward * distances.abs()
        else:
            forward = torch.tensor(self.forward_slopes, device=device, dtype=dtype)[:, None, None]
            bias = -torch.where(distances >= 0, backward * distances, forward * -distances)
        padding = self.heads - self.num_alibi_heads
        zeros = bias.new_zeros(*bias.shape[:-3], padding, *bias.shape[-2:])
        return torch.cat((bias, zeros), dim=-3)

    def extra_repr(self) -> str:
        return f"heads={self.heads}, num_alibi_heads={self.num_alibi_heads}, causal={self.causal}"
