"""Talking-heads attention ("Talking-Heads Attention", Shazeer et al., 2003.02436).

The attention logits are mixed across heads by a learned (h x h) matrix before the softmax, and
the attention weights by another one after it::

    logits'[b, g, i, j]  = sum_h P_logits[g, h]  * logits[b, h, i, j]
    weights'[b, g, i, j] = sum_h P_weights[g, h] * weights[b, h, i, j]

Both matrices start as the identity, so a freshly built model computes plain multi-head attention
and learns how much information the heads exchange. The paper also allows different numbers of
heads before and after each mixing; here both keep ``heads``.

Shape letters: b batch, h / g heads (before / after mixing), i queries, j keys.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .stages import SCORES, WEIGHTS, AttentionStage


class HeadMixing(AttentionStage):
    """One learned mixing of the head axis of a (b, h, i, j) tensor, initialised to identity; at
    the raw scores (``point='scores'``) or at the weights (``point='weights'``)."""

    fused = False

    def __init__(self, heads: int, point: str, keyword: str = "attn_talking_heads"):
        if point not in (SCORES, WEIGHTS):
            raise ValueError(f"talking heads mix the scores or the weights, not {point!r}")
        super().__init__(keyword, point=point)
        self.weight = nn.Parameter(torch.eye(heads))  # (g, h)

    def forward(self, x: Tensor, state=None) -> Tensor:
        return torch.einsum("b h i j, g h -> b g i j", x, self.weight)
