"""What happens to the attention output before and in the output projection: gates and scales.

- ``gate_values`` (AlphaFold2, Jumper et al. 2021, "gated self-attention"): the aggregated values
  of every head are multiplied by ``sigmoid(W x + b)``, a gate computed from the block's input;
  as in AlphaFold2 the gate starts with W = 0 and b = 1.
- ``head_scale`` ("NormFormer", 2110.09456): a learned scale per head on its output, initialised
  to 1.
- ``gate_value_heads`` ("Quantizable Transformers: Removing Outliers by Helping Attention Heads
  Do Nothing", 2306.12929, gated attention): one learned gate per head, ``sigmoid(w_h . x + b_h)``,
  multiplies that head's output, so a head can switch itself off for a token.
- ``on_attn`` ("Attention on Attention for Image Captioning", 1908.06954): the paper computes an
  information vector ``i = W_i [v; q] + b_i`` and a gate ``g = sigmoid(W_g [v; q] + b_g)`` from
  the attended values ``v`` and the query ``q`` and outputs ``i * g``. Following this library's
  README (the variant that trained better), the query is not concatenated: ``i`` and ``g`` are
  both affine maps of the attended values (which already depend on the query), i.e. a GLU replaces
  the output projection.

Shape letters: b batch, h heads, n queries, d head width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..weight_layout import linear, store_input_major
from .stages import OUTPUT, AttentionStage


class ValueGate(AttentionStage):
    """out (b, h, n, d) * sigmoid(to_gates(x)) per head and channel (AlphaFold2)."""

    point = OUTPUT

    def __init__(self, dim: int, heads: int, dim_v: int, keyword: str = "attn_gate_values"):
        super().__init__(keyword)
        self.heads = heads
        self.to_gates = linear(dim, heads * dim_v)
        nn.init.zeros_(self.to_gates.weight)
        nn.init.ones_(self.to_gates.bias)

    def forward(self, out: Tensor, x: Tensor, state=None) -> Tensor:
        gates = self.to_gates(x).sigmoid()  # (b, n, h * d)
        gates = gates.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # b n (h d) -> b h n d
        return out * gates


class HeadScale(AttentionStage):
    """A learned scale per head (NormFormer): out (b, h, n, d) * gamma (h, 1, 1)."""

    point = OUTPUT

    def __init__(self, heads: int, keyword: str = "attn_head_scale"):
        super().__init__(keyword)
        self.scale = nn.Parameter(torch.ones(heads, 1, 1))

    def forward(self, out: Tensor, x: Tensor, state=None) -> Tensor:
        return out * self.scale


class HeadGate(AttentionStage):
    """out (b, h, n, d) * sigmoid(to_gates(x)) with one gate per head (2306.12929)."""

    point = OUTPUT

    def __init__(self, dim: int, heads: int, keyword: str = "attn_gate_value_heads"):
        super().__init__(keyword)
        self.to_gates = linear(dim, heads)

    def forward(self, out: Tensor, x: Tensor, state=None) -> Tensor:
        gates = self.to_gates(x).sigmoid()  # (b, n, h)
        return out * gates.transpose(1, 2).unsqueeze(-1)  # b n h -> b h n 1


class AttentionOnAttention(nn.Linear):
    """The output projection as a GLU over the attended values (1908.06954, README variant):
    ``(W_i v + b_i) * sigmoid(W_g v + b_g)``. A ``Linear`` to ``2 * dim_out`` features (rows
    ``[W_i; W_g]``), so code that initialises the output projection treats it like one."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__(dim_in, 2 * dim_out)
        store_input_major(self)

    def forward(self, out: Tensor) -> Tensor:
        return F.glu(super().forward(out), dim=-1)
