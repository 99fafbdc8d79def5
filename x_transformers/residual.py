"""Residual connections and branch scales: how a block's output joins the residual stream.

A residual module takes ``(branch_out, residual)`` and returns the new stream:

- :class:`Residual`: ``branch_out + residual``;
- :class:`ScaledResidual`: ``branch_out + alpha * residual`` with a constant alpha (DeepNet,
  2203.00555);
- :class:`LearnedResidualScale`: ``branch_out + lambda * residual`` with a learned per-feature
  lambda, initialised to one (NormFormer, 2110.09456); with DeepNet as well,
  ``branch_out + alpha * lambda * residual`` (the constant multiplies the learned scale);
- :class:`GRUGatedResidual`: the GRU-type gate of GTrXL (1910.06764); with NormFormer's scale
  as well, the gate takes the scaled stream ``lambda * residual`` in place of ``residual``.

DeepNet with the GRU gate is refused (``options/blocks.py``): DeepNet's alpha and beta are
derived for the additive update ``alpha * x + f(x)``, which the gate replaces.

A branch scale multiplies the branch output before it joins the stream:

- :class:`Scale`: a constant, e.g. 0.5 for Macaron's half-step feedforwards (1906.02762);
- :class:`ReZero`: a learned scalar initialised to zero (2003.04887), so every block starts as
  the identity.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .weight_layout import linear


class Residual(nn.Module):
    """The plain residual connection ``branch_out + residual``."""

    def forward(self, branch_out: Tensor, residual: Tensor) -> Tensor:
        return branch_out + residual


class ScaledResidual(nn.Module):
    """``branch_out + alpha * residual`` with a constant ``alpha`` (DeepNorm, 2203.00555)."""

    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha

    def forward(self, branch_out: Tensor, residual: Tensor) -> Tensor:
        return branch_out + self.alpha * residual

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:.4f}"


class LearnedResidualScale(nn.Module):
    """``branch_out + alpha * lambda * residual``, lambda a learned (dim,) vector of ones at
    init (NormFormer's ResScale, 2110.09456) and alpha a constant: 1, or DeepNet's alpha
    (2203.00555) when both are on, so the block starts exactly as DeepNet's."""

    def __init__(self, dim: int, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha
        self.residual_scale = nn.Parameter(torch.ones(dim))

    def forward(self, branch_out: Tensor, residual: Tensor) -> Tensor:
        return branch_out + (self.alpha * self.residual_scale) * residual

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:.4f}"


class GRUGatedResidual(nn.Module):
    """The gating layer of GTrXL ("Stabilizing Transformers for RL", 1910.06764, eq. 5-8).

    With ``x`` the residual stream and ``y`` the branch output::

        r = sigmoid(W_r y + U_r x)
        z = sigmoid(W_z y + U_z x - b_g)
        h = tanh(W_g y + U_g (r * x))
        out = (1 - z) * x + z * h

    ``b_g`` is a learned per-feature bias initialised to ``gate_bias`` (2 in the paper), so that
    ``z`` starts small and the block starts close to the identity. With ``scale_residual=True``
    the gate takes ``x = lambda * residual``, lambda NormFormer's learned per-feature scale
    (2110.09456, ones at init), in every equation.
    """

    def __init__(self, dim: int, gate_bias: float = 2.0, scale_residual: bool = False):
        super().__init__()
        self.from_branch = linear(dim, 3 * dim, bias=False)  # W_r, W_z, W_g
        self.from_residual = linear(dim, 2 * dim, bias=False)  # U_r, U_z
        self.candidate_from_residual = linear(dim, dim, bias=False)  # U_g
        self.gate_bias = nn.Parameter(torch.full((dim,), float(gate_bias)))
        self.residual_scale = nn.Parameter(torch.ones(dim)) if scale_residual else None

    def forward(self, branch_out: Tensor, residual: Tensor) -> Tensor:
        if self.residual_scale is not None:
            residual = self.residual_scale * residual
        reset_y, update_y, candidate_y = self.from_branch(branch_out).chunk(3, dim=-1)
        reset_x, update_x = self.from_residual(residual).chunk(2, dim=-1)
        reset = torch.sigmoid(reset_y + reset_x)
        update = torch.sigmoid(update_y + update_x - self.gate_bias)
        candidate = torch.tanh(candidate_y + self.candidate_from_residual(reset * residual))
        return (1 - update) * residual + update * candidate


class Scale(nn.Module):
    """Multiply by a constant (Macaron's half-step feedforward uses 0.5)."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x: Tensor) -> Tensor:
        return x * self.value

    def extra_repr(self) -> str:
        return f"value={self.value}"


class ReZero(nn.Module):
    """Multiply by a learned scalar initialised to zero (ReZero, 2003.04887)."""

    def __init__(self):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate
