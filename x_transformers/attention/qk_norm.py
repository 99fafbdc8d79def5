"""Query-key normalisation: cosine-similarity attention.

- "Query-Key Normalization for Transformers" (Henry et al., 2010.04245): queries and keys are
  l2-normalised along the head dimension and the dot product is multiplied by a learned scale g
  (the paper initialises g at log2(L^2 - L) for sequence length L: the legacy keyword
  ``qk_norm_attn_seq_len`` sets exactly that initial value).
- Grouped QK normalisation (this library's README): the head dimension is split into ``groups``
  groups, each l2-normalised, so the similarity q.k lies in [-groups, groups] before the scale.
- "Scaling Vision Transformers to 22 Billion Parameters" (2302.05442): a learned per-dimension
  gain on the normalised queries and keys (QK RMSNorm); ``qk_norm_dim_scale``.

The scale is learned by default (initialised at ``qk_norm_scale``), as in 2010.04245;
``qk_norm_learned_scale=False`` keeps it fixed. It multiplies the queries only, so the kernel
runs with scale 1 on both the fused and the explicit path::

    score_ij = scale * <gain_q * norm(q_i), gain_k * norm(k_j)>,  |score_ij| <= groups * scale
                                                                  (gains at their initial 1)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..options import AttentionOptions


class GroupedL2Norm(nn.Module):
    """l2-normalise each of ``groups`` groups of the last dimension; then an optional learned gain
    per dimension and an optional (learned or fixed) scalar scale."""

    def __init__(
        self,
        dim: int,
        groups: int = 1,
        *,
        dim_scale: bool = False,
        scale: float | None = None,
        learned_scale: bool = True,
    ):
        super().__init__()
        self.groups = groups
        self.gain = nn.Parameter(torch.ones(dim)) if dim_scale else None
        if scale is not None and learned_scale:
            self.scale = nn.Parameter(torch.tensor(float(scale)))
        else:
            self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        if self.groups == 1:
            x = F.normalize(x, dim=-1)
        else:
            x = rearrange(x, "... (g d) -> ... g d", g=self.groups)
            x = rearrange(F.normalize(x, dim=-1), "... g d -> ... (g d)")
        if self.gain is not None:
            x = x * self.gain
        if self.scale is not None:
            x = x * self.scale
        return x


def build_qk_norm(
    options: AttentionOptions, dim_qk: int, prefix: str
) -> tuple[GroupedL2Norm | None, GroupedL2Norm | None]:
    """(query norm carrying the scale, key norm), or (None, None) when qk-norm is off."""
    check_qk_norm_options(options, dim_qk, prefix)
    if not options.qk_norm:
        return None, None
    query_norm = GroupedL2Norm(
        dim_qk,
        options.qk_norm_groups,
        dim_scale=options.qk_norm_dim_scale,
        scale=options.qk_norm_scale,
        learned_scale=options.qk_norm_learned_scale,
    )
    key_norm = GroupedL2Norm(dim_qk, options.qk_norm_groups, dim_scale=options.qk_norm_dim_scale)
    return query_norm, key_norm


def check_qk_norm_options(options: AttentionOptions, dim_qk: int, prefix: str) -> None:
    defaults = AttentionOptions()
    if not options.qk_norm:
        names = ("qk_norm_groups", "qk_norm_scale", "qk_norm_dim_scale", "qk_norm_learned_scale")
        for name in names:
            if getattr(options, name) != getattr(defaults, name):
                raise ValueError(
                    f"'{prefix}{name}={getattr(options, name)!r}' has no effect without "
                    f"'{prefix}qk_norm=True'"
                )
        return
    groups = options.qk_norm_groups
    if groups < 1 or dim_qk % groups != 0:
        raise ValueError(
            f"'{prefix}qk_norm_groups' must be a positive divisor of the query/key head "
            f"dimension {dim_qk}, got {groups}"
        )
    if options.qk_norm_scale <= 0:
        raise ValueError(f"'{prefix}qk_norm_scale' must be > 0, got {options.qk_norm_scale}")
