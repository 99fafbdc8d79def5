"""Soft-capped attention logits ("Gemma 2: Improving Open Language Models at a Practical Size",
2408.00118): the scaled scores pass through ``cap * tanh(scores / cap)`` before bias and mask, so
no logit exceeds ``cap`` in magnitude while small logits are left almost unchanged.
"""

from __future__ import annotations

from torch import Tensor

from .stages import SCORES, AttentionStage


class SoftclampScores(AttentionStage):
    """``cap * tanh(scores / cap)`` on the raw scores (b, h, i, j)."""

    point, fused = SCORES, False

    def __init__(self, cap: float, keyword: str = "attn_softclamp_logits"):
        super().__init__(keyword)
        if not cap > 0:
            raise ValueError(f"the soft-clamp value must be > 0, got {cap}")
        self.cap = float(cap)

    def forward(self, scores: Tensor, state=None) -> Tensor:
        return (scores / self.cap).tanh() * self.cap

    def extra_repr(self) -> str:
        return f"cap={self.cap}, {super().extra_repr()}"
