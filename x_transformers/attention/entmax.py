"""entmax-1.5: a sparse alternative to softmax ("Sparse Sequence-to-Sequence Models", 1905.05702;
used for attention in "Adaptively Sparse Transformers", 1909.00015).

For scores ``z`` along the last dimension, entmax-1.5 is

    p_i = [z_i / 2 - tau]_+ ** 2,   with tau chosen so that sum_i p_i = 1.

Unlike softmax it gives exact zeros to low scores. The threshold ``tau`` is found exactly by
sorting (Algorithm 2 of 1905.05702): with ``x`` sorted in decreasing order and a candidate support
of the ``r`` largest entries, ``sum_{i<=r} (x_i - tau)^2 = 1`` is a quadratic in ``tau`` whose
smaller root is

    tau_r = mean_r - sqrt((1 - r * (meansq_r - mean_r^2)) / r);

the support is the largest ``r`` with ``tau_r <= x_r``.

Gradient (derived from the closed form on the support S): with ``s = sqrt(p)``,
``dL/dz = s * g - s * (s . g) / sum(s)``, i.e. the Jacobian is ``diag(s) - s s^T / sum(s)``.

Numerics: after subtracting the row maximum, ``x = z / 2`` has a maximum of 0 and ``p_max =
tau^2 <= 1``, so ``tau >= -1`` and every entry with ``x < -1`` lies outside the support. Entries
are therefore clamped at -2 before sorting: the result is unchanged, and the squares stay finite
even for masked scores filled with ``finfo.min``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..backend import saved_tensors, sort_descending
from .stages import NORMALIZE, AttentionStage

_OUTSIDE_SUPPORT = -2.0  # any x < -1 has zero probability (see the module docstring)


def _entmax15_threshold(x: Tensor) -> Tensor:
    """x (..., n) with max 0 -> tau (..., 1)."""
    sorted_x, _ = sort_descending(x, dim=-1)
    n = x.shape[-1]
    rank = torch.arange(1, n + 1, device=x.device, dtype=x.dtype)
    mean = sorted_x.cumsum(dim=-1) / rank
    mean_sq = (sorted_x * sorted_x).cumsum(dim=-1) / rank
    spread = rank * (mean_sq - mean * mean)
    delta = ((1 - spread) / rank).clamp(min=0)
    tau = mean - delta.sqrt()
    support_size = (tau <= sorted_x).sum(dim=-1, keepdim=True)  # >= 1: tau_1 = x_1 - 1
    return tau.gather(-1, support_size - 1)


class Entmax15Function(torch.autograd.Function):
    """entmax-1.5 along the last dimension with the exact sparse Jacobian as backward."""

    @staticmethod
    def forward(ctx, z: Tensor) -> Tensor:
        x = (z - z.amax(dim=-1, keepdim=True)) / 2
        x = x.clamp(min=_OUTSIDE_SUPPORT)
        tau = _entmax15_threshold(x)
        p = (x - tau).clamp(min=0) ** 2
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:
        (p,) = saved_tensors(ctx)
        s = p.sqrt()
        grad = s * grad_output
        grad = grad - s * grad.sum(dim=-1, keepdim=True) / s.sum(dim=-1, keepdim=True)
        return grad


def entmax15(z: Tensor) -> Tensor:
    """entmax-1.5 of ``z`` along the last dimension (half precision is computed in float32)."""
    if z.dtype in (torch.float16, torch.bfloat16):
        return Entmax15Function.apply(z.float()).to(z.dtype)
    return Entmax15Function.apply(z)


class Entmax15(AttentionStage):
    """entmax-1.5 over the keys (1909.00015): attention weights with exact zeros."""

    point, fused = NORMALIZE, False

    def __init__(self, keyword: str = "attn_use_entmax15"):
        super().__init__(keyword)

    def forward(self, scores: Tensor, state=None) -> Tensor:
        return entmax15(scores)
