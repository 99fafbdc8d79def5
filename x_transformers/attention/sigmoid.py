"""Sigmoid attention ("Theory, Analysis, and Best Practices for Sigmoid Self-Attention",
Ramapuram et al., 2409.04431): each weight is an independent sigmoid of its score plus a bias,

    weights_ij = sigmoid(scores_ij + b),   b = -log(n)

with ``n`` the training sequence length, so that the weights of a row start summing to about one.
The bias is a fixed constant (``attn_sigmoid_bias``), never derived from the number of keys of a
call, so a cached decoding step computes exactly what the full forward computes. Masked scores
hold ``finfo.min`` and get weight 0.
"""

from __future__ import annotations

import math

from torch import Tensor

from .stages import NORMALIZE, AttentionStage

DEFAULT_SIGMOID_BIAS = -math.log(1024)


class SigmoidAttention(AttentionStage):
    """Replaces the softmax by ``sigmoid(scores + bias)``."""

    point, fused = NORMALIZE, False

    def __init__(self, bias: float = DEFAULT_SIGMOID_BIAS, keyword: str = "attn_sigmoid"):
        super().__init__(keyword)
        self.bias = float(bias)

    def forward(self, scores: Tensor, state=None) -> Tensor:
        return (scores + self.bias).sigmoid()

    def extra_repr(self) -> str:
        return f"bias={self.bias:.4g}, {super().extra_repr()}"
