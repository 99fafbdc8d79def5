"""Top-k sparse attention ("Explicit Sparse Transformer: Concentrated Attention Through Explicit
Selection", Zhao et al., 1912.11637).

Each query keeps only its ``k`` largest scores; every other score is set to the masked value
before the softmax, so exactly ``k`` keys per query get a non-zero weight (fewer when fewer keys
are visible). Gradients flow through the kept scores only, as in the paper.

Shape letters: b batch, h heads, i queries, j keys.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .stages import MASKED, AttentionStage


class SparseTopK(AttentionStage):
    """Keep the ``k`` largest scores of every query row; the rest become ``finfo.min``."""

    point, fused = MASKED, False

    def __init__(self, k: int, keyword: str = "attn_sparse_topk"):
        super().__init__(keyword)
        self.k = k

    def forward(self, scores: Tensor, state=None) -> Tensor:
        """scores (b, h, i, j), already masked -> (b, h, i, j)."""
        if self.k >= scores.shape[-1]:
            return scores
        # indices rather than a threshold, so ties can never keep more than k keys; a stable
        # sort breaks ties towards the earliest key, so a row keeps the same keys whether it is
        # computed in a full forward or in a cached decoding step (saturated scores tie exactly)
        top_indices = scores.argsort(dim=-1, descending=True, stable=True)[..., : self.k]
        # scattered as numbers (Paddle has no bool scatter kernel), then compared
        keep = torch.zeros_like(scores).scatter_(-1, top_indices, 1.0) > 0
        return scores.masked_fill(~keep, torch.finfo(scores.dtype).min)

    def extra_repr(self) -> str:
        return f"k={self.k}, {super().extra_repr()}"
