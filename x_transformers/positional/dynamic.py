"""Dynamic position bias: a small MLP maps the distance ``d = query_position - key_position`` to
one bias per head (CrossFormer's "dynamic position bias", 2108.00154; SwinV2's continuous position
bias with log-spaced distances ``sign(d) * log(1 + |d|)``, 2111.09883).

Because the bias is a function of the distance rather than a table, it is defined at any length.
The MLP runs once per *distinct* distance (``i + j - 1`` of them), not per (query, key) pair, in
float32 at least (its weights are cast, so a bf16 model or autocast still computes it in float32).
One module is shared by all layers.

Shape letters: h heads, i queries, j keys, k distinct distances.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..weight_layout import linear
from .span import PositionSpan


class DynamicPositionBias(nn.Module):
    """MLP ``1 -> hidden -> ... -> heads`` with SiLU activations.

    Args:
        hidden_dim: width of the hidden layers.
        heads: one output per head.
        depth: number of hidden layers (>= 1).
        log_distance: feed ``sign(d) * log(1 + |d|)`` instead of ``d``.
    """

    def __init__(self, hidden_dim: int, heads: int, *, depth: int = 2, log_distance: bool = False):
        super().__init__()
        if depth < 1:
            raise ValueError(f"the dynamic position bias needs depth >= 1, got {depth}")
        widths = [1] + [hidden_dim] * depth
        self.hidden = nn.ModuleList(linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.to_heads = linear(hidden_dim, heads)
        self.log_distance = log_distance

    def forward(self, span: PositionSpan, device: torch.device, dtype: torch.dtype) -> Tensor:
        """(h, i, j) bias in ``dtype``; (b, h, i, j) with per-row explicit positions."""
        distances, index = span.distinct_distances(device)  # (k,), (i, j) or (b, i, j)
        h = distances.to(dtype)[:, None]  # (k, 1)
        if self.log_distance:
            h = torch.sign(h) * torch.log1p(h.abs())
        for layer in self.hidden:
            h = F.silu(F.linear(h, layer.weight.to(dtype), layer.bias.to(dtype)))
        per_distance = F.linear(h, self.to_heads.weight.to(dtype), self.to_heads.bias.to(dtype))
        return rearrange(per_distance[index], "... i j h -> ... h i j")
