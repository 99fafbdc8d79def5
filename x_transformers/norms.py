"""Normalisation layers and the builder that picks one from the options.

- ``nn.LayerNorm`` (the default);
- :class:`RMSNorm` ("Root Mean Square Layer Normalization", Zhang & Sennrich, 1910.07467);
- :class:`ScaleNorm` ("Transformers without Tears", Nguyen & Salazar, 1910.05895);
- no norm at all with ReZero (2003.04887): :func:`build_norm` returns ``None``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .options import BlockOptions


class RMSNorm(nn.Module):
    """RMSNorm (1910.07467): ``x / sqrt(mean(x^2) + eps) * g`` over the last dimension.

    No mean centring and no bias; ``g`` is a learned per-feature gain initialised to one.
    """

    def __init__(self, dim: int, eps: float = 1e-8):
        super().__init__()
        if dim < 1:
            raise ValueError(f"RMSNorm needs dim >= 1, got {dim}")
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        mean_square = x.pow(2).mean(dim=-1, keepdim=True)
        return x * torch.rsqrt(mean_square + self.eps) * self.weight


class ScaleNorm(nn.Module):
    """ScaleNorm (1910.05895): ``g * x / max(||x||, eps)`` over the last dimension.

    One learned scalar ``g`` for all features, initialised to ``sqrt(dim)`` so that a unit-RMS
    input keeps its scale.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        if dim < 1:
            raise ValueError(f"ScaleNorm needs dim >= 1, got {dim}")
        self.eps = eps
        self.scale = nn.Parameter(torch.tensor(float(dim) ** 0.5))

    def forward(self, x: Tensor) -> Tensor:
        norm = x.norm(dim=-1, keepdim=True).clamp(min=self.eps)
        return x / norm * self.scale


def build_norm(dim: int, blocks: BlockOptions) -> nn.Module | None:
    """The norm used throughout a layer stack; ``None`` with ReZero, which has no norm."""
    if blocks.use_rezero:
        return None
    eps = {} if blocks.norm_eps is None else {"eps": blocks.norm_eps}  # 'norm_eps'
    if blocks.use_rmsnorm:
        return RMSNorm(dim, **eps)
    if blocks.use_scalenorm:
        return ScaleNorm(dim, **eps)
    return nn.LayerNorm(dim, **eps)
