"""Residual attention ("RealFormer: Transformer Likes Residual Attention", He et al., 2012.11747).

Each attention block adds the raw scores of the previous block of the same kind to its own,
before bias and mask, and hands the sum on::

    scores_l = scale * q_l . k_l + scores_{l-1}

The carried scores live in the forward's state under the feature's keyword (``residual_attn`` for
self-attention, ``cross_residual_attn`` for cross-attention), so the two kinds never mix.
"""

from __future__ import annotations

from torch import Tensor

from .stages import SCORES, AttentionStage, ForwardState


class ResidualScores(AttentionStage):
    """Adds the previous block's scores (b, h, i, j) and stores the sum for the next block."""

    point, fused = SCORES, False

    def __init__(self, keyword: str = "residual_attn"):
        super().__init__(keyword, state_key=keyword)

    def forward(self, scores: Tensor, state: ForwardState | None = None) -> Tensor:
        if state is None:
            return scores
        previous = state.get(self.state_key)
        if previous is not None:
            scores = scores + previous
        state.put(self.state_key, scores)
        return scores
