"""Negative squared-distance scores ("The Lipschitz Constant of Self-Attention", Kim et al.,
2006.04710): ``score_ij = -||q_i - k_j||^2 * scale`` instead of ``q_i . k_j * scale``.

Since ``-||q - k||^2 = 2 q.k - ||q||^2 - ||k||^2``, augmenting the heads with two features,

    q' = [2q, -||q||^2, 1],   k' = [k, 1, -||k||^2],   so that  q' . k' = -||q - k||^2,

turns the distance into a dot product: the fused kernel computes it exactly (given the scale of
the original head width), and so does the explicit path.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .stages import SIMILARITY, AttentionStage


class L2DistanceScores(AttentionStage):
    """Augments q (b, h, i, d) and k (b, k, j, d) to width d + 2 (see the module docstring)."""

    point, fused = SIMILARITY, True

    def __init__(self, keyword: str = "attn_l2_distance"):
        super().__init__(keyword)

    def forward(self, q: Tensor, k: Tensor, state=None) -> tuple[Tensor, Tensor]:
        q_sq = q.pow(2).sum(dim=-1, keepdim=True)
        k_sq = k.pow(2).sum(dim=-1, keepdim=True)
        q = torch.cat((2 * q, -q_sq, torch.ones_like(q_sq)), dim=-1)
        k = torch.cat((k, torch.ones_like(k_sq), -k_sq), dim=-1)
        return q, k
