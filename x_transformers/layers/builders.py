"""Builders: turn a parsed :class:`LayerConfig` into the modules of a layer stack."""

from __future__ import annotations

from torch import nn

from ..attention import Attention
from ..attention.residual_scores import ResidualScores
from ..attention.value_residual import ValueResidual
from ..deepnorm import DeepNormConstants, deepnorm_init, stack_constants
from ..feedforward import FeedForward
from ..options import BlockOptions, LayerConfig
from ..residual import GRUGatedResidual, LearnedResidualScale, ReZero, Scale, ScaledResidual
from .conditioning import build_adaptive_layerscale, build_conditioned_norm
from .hyper_connections import build_hyper_connection
from .layout import CROSS_ATTENTION, FEEDFORWARD, SELF_ATTENTION
from .shift_tokens import build_token_shift, shifts_per_block
from .sublayer import Sublayer


def build_branch(
    kind: str, config: LayerConfig, dim_context: int | None, index_of_kind: int = 0
) -> nn.Module:
    """The branch of one block; ``index_of_kind`` counts the earlier blocks of the same kind."""
    if kind == SELF_ATTENTION:
        return Attention(
            config.dim,
            config.heads,
            config.attention,
            causal=config.causal,
            stages=stack_stages(kind, config.blocks, index_of_kind),
        )
    if kind == CROSS_ATTENTION:
        return Attention(
            config.dim,
            config.heads,
            config.cross_attention,
            dim_context=dim_context,
            option_prefix="cross_attn_",
            stages=stack_stages(kind, config.blocks, index_of_kind),
        )
    if kind == FEEDFORWARD:
        return FeedForward(config.dim, config.feedforward)
    raise ValueError(f"unknown block kind {kind!r}; expected one of 'a', 'c', 'f'")


def stack_stages(kind: str, blocks: BlockOptions, index_of_kind: int) -> list:
    """Attention stages that stack keywords contribute to the blocks of one kind: what one block
    hands to the next through the forward's state."""
    self_attention = kind == SELF_ATTENTION
    residual_keyword = "residual_attn" if self_attention else "cross_residual_attn"
    candidates = [
        getattr(blocks, residual_keyword) and ResidualScores(residual_keyword),
        self_attention and blocks.add_value_residual and ValueResidual(first=index_of_kind == 0),
    ]
    return [stage for stage in candidates if stage]


def build_blocks(kinds: tuple[str, ...], config: LayerConfig, dim_context: int | None):
    """One :class:`Sublayer` per kind of the plan (per-block token shifts, DeepNorm constants)."""
    shifts = shifts_per_block(config.blocks.shift_tokens, len(kinds))
    deepnorm = stack_constants(config) if config.blocks.deepnorm else None
    return nn.ModuleList(
        build_block(
            kind, config, dim_context, shift=shift, deepnorm=deepnorm, index_of_kind=index, at=at
        )
        for at, (kind, shift, index) in enumerate(zip(kinds, shifts, indices_of_kind(kinds)))
    )


def indices_of_kind(kinds: tuple[str, ...]) -> list[int]:
    """For each block, how many blocks of the same kind come before it."""
    return [kinds[:position].count(kind) for position, kind in enumerate(kinds)]


def build_block(
    kind: str,
    config: LayerConfig,
    dim_context: int | None,
    *,
    shift: int = 0,
    deepnorm: DeepNormConstants | None = None,
    index_of_kind: int = 0,
    at: int = 0,
) -> Sublayer:
    """Block ``at`` of the plan (``index_of_kind``: how many blocks of its kind come before)."""
    dim, blocks = config.dim, config.blocks
    branch = build_branch(kind, config, dim_context, index_of_kind)
    if deepnorm is not None:
        deepnorm_init(branch, deepnorm.beta)
    pre_norm = uses_pre_norm(blocks)
    return Sublayer(
        branch,
        pre_branch_norm=build_conditioned_norm(dim, blocks) if pre_norm else None,
        token_shift=build_token_shift(dim, shift),
        post_branch_norm=build_conditioned_norm(dim, blocks) if blocks.sandwich_norm else None,
        branch_scale=build_branch_scale(kind, blocks),
        branch_dropout=build_branch_dropout(kind, config),
        residual=build_residual(dim, blocks, deepnorm),
        post_residual_norm=None if pre_norm else build_conditioned_norm(dim, blocks),
        branch_gate=build_adaptive_layerscale(dim, blocks),
        hyper_connection=build_hyper_connection(dim, blocks.num_residual_streams, at),
    )


def uses_pre_norm(blocks: BlockOptions) -> bool:
    """DeepNorm is a post-norm layout whatever ``pre_norm`` says."""
    return blocks.pre_norm and not blocks.deepnorm


def build_branch_scale(kind: str, blocks: BlockOptions) -> nn.Module | None:
    """Macaron's half-step feedforwards (x 0.5) and ReZero's zero-initialised gate."""
    scales = []
    if blocks.macaron and kind == FEEDFORWARD:
        scales.append(Scale(0.5))
    if blocks.use_rezero:
        scales.append(ReZero())
    if len(scales) > 1:
        return nn.Sequential(*scales)
    return scales[0] if scales else None


def build_branch_dropout(kind: str, config: LayerConfig) -> nn.Module | None:
    """Sublayer dropout: ``attn_`` / ``cross_attn_`` / ``ff_sublayer_dropout`` of the kind."""
    options = {
        SELF_ATTENTION: config.attention,
        CROSS_ATTENTION: config.cross_attention,
        FEEDFORWARD: config.feedforward,
    }[kind]
    rate = options.sublayer_dropout
    return nn.Dropout(rate) if rate > 0 else None


def build_residual(
    dim: int, blocks: BlockOptions, deepnorm: DeepNormConstants | None
) -> nn.Module | None:
    """DeepNorm's alpha, NormFormer's learned scale or GTrXL's gate; ``None``: plain addition.
    They compose: the gate takes the learned-scaled stream, and DeepNorm's alpha multiplies the
    learned scale (DeepNorm with the gate is refused by the options)."""
    if blocks.gate_residual:
        return GRUGatedResidual(dim, scale_residual=blocks.scale_residual)
    if blocks.scale_residual:
        return LearnedResidualScale(dim, alpha=1.0 if deepnorm is None else deepnorm.alpha)
    if deepnorm is not None:
        return ScaledResidual(deepnorm.alpha)
    return None


def build_final_norm(config: LayerConfig) -> nn.Module:
    """Pre-norm stacks end with a norm; post-norm stacks are already normalised; ReZero has none."""
    if not uses_pre_norm(config.blocks):
        return nn.Identity()
    norm = build_conditioned_norm(config.dim, config.blocks)  # adaptive norms read the condition
    return nn.Identity() if norm is None else norm
