"""Position-infused attention (Shortformer, 2012.15832).

Fixed sinusoids of the model width are added to the *inputs* of the query and key projections of
every self-attention layer, and never to the values, so the hidden states themselves carry no
absolute position (Shortformer relies on this to reuse cached states at new positions). There are
no parameters and no maximum length.

Shape letters: b batch, i queries, j keys, d model width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .sinusoidal import sinusoids
from .span import PositionSpan


@dataclass(frozen=True)
class Infusion:
    """Sinusoids at the query positions (i, d) and at the key positions (j, d) of a span."""

    query: Tensor
    key: Tensor

    def infuse(self, q_input: Tensor, k_input: Tensor) -> tuple[Tensor, Tensor]:
        """Add positions to q_input (b, i, d) and k_input (b, n, d), placed like the keys of
        :meth:`Rotation.rotate_keys`: all j keys of the span take the key positions, fewer (new
        keys of a KV cache) the last n query positions."""
        n, num_queries, num_keys = k_input.shape[-2], self.query.shape[0], self.key.shape[0]
        if n != num_keys and n > num_queries:
            raise ValueError(
                f"{n} key inputs, but the position span has {num_keys} keys and {num_queries} "
                "queries; pass the keys of the span or only new ones"
            )
        key = self.key if n == num_keys else self.query[-n:]
        return q_input + self.query.to(q_input.dtype), k_input + key.to(k_input.dtype)


class PositionInfusion(nn.Module):
    """Sinusoids of width ``dim`` for the queries and keys of a span."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, span: PositionSpan, device: torch.device, dtype: torch.dtype) -> Infusion:
        return Infusion(
            query=sinusoids(span.query_positions(device, dtype), self.dim),
            key=sinusoids(span.key_positions(device, dtype), self.dim),
        )

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
