"""Conditioning a layer stack on a vector: adaptive norms and adaptive layer scale.

"Scalable Diffusion Models with Transformers" (DiT, Peebles & Xie, 2212.09748). The forward
takes ``condition=`` (b, dim_condition), one vector per row (a timestep or class embedding):

- ``use_adaptive_layernorm`` (adaLN): every norm of the stack is a LayerNorm without learned
  affine whose gain and shift come from the condition, ``norm(x) * (1 + gamma) + beta`` with
  ``gamma, beta = Linear(condition)``;
- ``use_adaptive_rmsnorm``: the same with RMSNorm, gain only (RMSNorm has no shift);
- ``use_adaptive_layerscale`` (adaLN-Zero): every branch output is multiplied by a per-feature
  gate ``Linear(condition)`` before it joins the residual stream::

      x ──┬── norm(x | c) ── branch ── * gate(c) ──(+)──>
          └────────────────────────────────────────┘

Every projection from the condition starts at zero: at initialisation the adaptive norms equal
the plain norm with unit gain and the gates close every branch, so each block is the identity
(the stack's output is its input through the final norm). Conditioning is per row and per
feature, never across positions, so causality, padding, the KV cache and Transformer-XL
memories are unaffected (with the same condition at every call).

Shape letters: b batch, n sequence, d width, c condition width.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..norms import build_norm
from ..options import BlockOptions
from ..weight_layout import linear


def _per_row(values: Tensor, x: Tensor) -> Tensor:
    """(b, d) -> (b, 1, ..., 1, d), broadcasting over every middle dimension of x."""
    return values.view(values.shape[0], *([1] * (x.ndim - 2)), values.shape[-1])


def _zero_linear(dim_in: int, dim_out: int) -> nn.Linear:
    layer = linear(dim_in, dim_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class AdaptiveLayerNorm(nn.Module):
    """adaLN (DiT, 2212.09748): ``layer_norm(x) * (1 + gamma(c)) + beta(c)``; gamma and beta
    are a zero-initialised ``Linear(dim_condition, 2 * dim)``."""

    takes_condition = True

    def __init__(self, dim: int, dim_condition: int, eps: float = 1e-5):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.to_gamma_beta = _zero_linear(dim_condition, 2 * dim)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        gamma, beta = self.to_gamma_beta(condition).chunk(2, dim=-1)  # (b, d) each
        normed = F.layer_norm(x, (self.dim,), eps=self.eps)
        return normed * (1 + _per_row(gamma, x)) + _per_row(beta, x)


class AdaptiveRMSNorm(nn.Module):
    """Adaptive RMSNorm (DiT's adaLN, 2212.09748, on RMSNorm, 1910.07467):
    ``x / rms(x) * (1 + gamma(c))``, gamma a zero-initialised ``Linear(dim_condition, dim)``."""

    takes_condition = True

    def __init__(self, dim: int, dim_condition: int, eps: float = 1e-8):
        super().__init__()
        self.eps = eps
        self.to_gamma = _zero_linear(dim_condition, dim)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        normed = x * (x.pow(2).mean(dim=-1, keepdim=True) + self.eps).rsqrt()
        return normed * (1 + _per_row(self.to_gamma(condition), x))


class AdaptiveLayerScale(nn.Module):
    """adaLN-Zero's gate (DiT, 2212.09748): the branch output times ``Linear(c)``, initialised
    to zero so every block starts as the identity."""

    def __init__(self, dim: int, dim_condition: int):
        super().__init__()
        self.to_gate = _zero_linear(dim_condition, dim)

    def forward(self, out: Tensor, condition: Tensor) -> Tensor:
        return out * _per_row(self.to_gate(condition), out)


def condition_width(dim: int, blocks: BlockOptions) -> int | None:
    """The width of ``condition=``, or None when no feature of the stack reads a condition."""
    reads = blocks.use_adaptive_layernorm or blocks.use_adaptive_rmsnorm
    if not (reads or blocks.use_adaptive_layerscale):
        return None
    return blocks.dim_condition or dim


def build_conditioned_norm(dim: int, blocks: BlockOptions) -> nn.Module | None:
    """The stack's norm: an adaptive one (``use_adaptive_layernorm`` / ``use_adaptive_rmsnorm``)
    or :func:`~x_transformers.norms.build_norm`'s."""
    dim_condition = condition_width(dim, blocks)
    eps = {} if blocks.norm_eps is None else {"eps": blocks.norm_eps}
    if blocks.use_adaptive_layernorm:
        return AdaptiveLayerNorm(dim, dim_condition, **eps)
    if blocks.use_adaptive_rmsnorm:
        return AdaptiveRMSNorm(dim, dim_condition, **eps)
    return build_norm(dim, blocks)


def build_adaptive_layerscale(dim: int, blocks: BlockOptions) -> AdaptiveLayerScale | None:
    if not blocks.use_adaptive_layerscale:
        return None
    return AdaptiveLayerScale(dim, condition_width(dim, blocks))


def apply_norm(norm: nn.Module | None, x: Tensor, condition: Tensor | None) -> Tensor:
    """``norm(x)``, with the condition for an adaptive norm; ``None`` (no norm) and an
    ``nn.Identity`` are skipped."""
    if norm is None or type(norm) is nn.Identity:
        return x
    # the class attribute: a missing attribute on a module instance raises inside
    # nn.Module.__getattr__, which costs more than the rest of this check (every block, every step)
    if getattr(type(norm), "takes_condition", False):
        return norm(x, condition)
    return norm(x)


def check_condition(stack, x: Tensor, condition: Tensor | None) -> Tensor | None:
    """``condition`` (b, dim_condition) exactly when the stack reads one."""
    name, width = type(stack).__name__, stack.dim_condition
    if width is None:
        if condition is not None:
            raise ValueError(
                f"{name} got 'condition' but reads none; build it with 'use_adaptive_layernorm',"
                " 'use_adaptive_rmsnorm' or 'use_adaptive_layerscale' (and 'dim_condition')"
            )
        return None
    if condition is None:
        raise ValueError(
            f"{name} is conditioned (dim_condition={width}): pass condition= of shape "
            f"(batch, {width})"
        )
    if condition.ndim != 2 or condition.shape != (x.shape[0], width):
        raise ValueError(
            f"'condition' must have shape (batch={x.shape[0]}, dim_condition={width}), "
            f"got {tuple(condition.shape)}"
        )
    if not condition.is_floating_point():
        raise TypeError(f"'condition' must be a float tensor, got dtype {condition.dtype}")
    return condition


def attach_condition(stack, x: Tensor, prepared, condition: Tensor | None) -> None:
    """Check the condition and hand it to every block of the prepared forward (and to the
    final norm, through ``prepared.condition``)."""
    condition = check_condition(stack, x, condition)
    if condition is None:
        return
    prepared.condition = condition
    for inputs in prepared.block_inputs.values():
        inputs["condition"] = condition
