"""Builders: turn a parsed :class:`LayerConfig` into the modules of a layer stack."""

from __future__ import annotations

from torch import nn

from ..attention import Attention
from ..feedforward import FeedForward
from ..norms import build_norm
from ..options import LayerConfig
from .layout import CROSS_ATTENTION, FEEDFORWARD, SELF_ATTENTION
from .sublayer import Sublayer


def build_branch(kind: str, config: LayerConfig, dim_context: int | None) -> nn.Module:
    if kind == SELF_ATTENTION:
        return Attention(config.dim, config.heads, config.attention, causal=config.causal)
    if kind == CROSS_ATTENTION:
        return Attention(
            config.dim,
            config.heads,
            config.cross_attention,
            dim_context=dim_context,
            option_prefix="cross_attn_",
        )
    if kind == FEEDFORWARD:
        return FeedForward(config.dim, config.feedforward)
    raise ValueError(f"unknown block kind {kind!r}; expected one of 'a', 'c', 'f'")


def build_block(kind: str, config: LayerConfig, dim_context: int | None) -> Sublayer:
    branch = build_branch(kind, config, dim_context)
    pre_norm = config.blocks.pre_norm
    return Sublayer(
        branch,
        pre_branch_norm=build_norm(config.dim, config.blocks) if pre_norm else None,
        post_residual_norm=None if pre_norm else build_norm(config.dim, config.blocks),
    )


def build_final_norm(config: LayerConfig) -> nn.Module:
    """Pre-norm stacks end with a norm; post-norm stacks are already normalised."""
    return build_norm(config.dim, config.blocks) if config.blocks.pre_norm else nn.Identity()
