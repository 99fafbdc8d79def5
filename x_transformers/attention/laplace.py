"""Laplace attention ("Mega: Moving Average Equipped Gated Attention", Ma et al., 2209.10655):
each weight is an independent Laplace-function value of its score instead of a softmax share,

    weights_ij = 0.5 * (1 + erf((scores_ij - mu) / (sigma * sqrt(2)))),
    mu = sqrt(1/2),  sigma = sqrt(1 / (4 pi)),

chosen in the paper so that it approximates ``relu(x)^2`` near the origin while staying bounded
and smooth. Masked scores hold ``finfo.min`` and get weight 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .stages import NORMALIZE, AttentionStage

LAPLACE_MU = math.sqrt(0.5)
LAPLACE_SIGMA = math.sqrt(1.0 / (4.0 * math.pi))


class LaplaceAttention(AttentionStage):
    """Replaces the softmax by the Laplace function of the scores."""

    point, fused = NORMALIZE, False

    def __init__(self, keyword: str = "attn_laplace"):
        super().__init__(keyword)

    def forward(self, scores: Tensor, state=None) -> Tensor:
        return 0.5 * (1.0 + torch.erf((scores - LAPLACE_MU) / (LAPLACE_SIGMA * math.sqrt(2.0))))
