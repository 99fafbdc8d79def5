"""From :class:`~x_transformers.options.PositionOptions` to one :class:`PositionProvider` per
layer stack (None when no positional scheme is on), with the checks that refuse keywords that
would otherwise be ignored or combinations that are not supported."""

from __future__ import annotations

import dataclasses

from torch import nn

from ..attention.heads import resolve_head_shapes
from ..options import LayerConfig, PositionOptions
from .alibi import AlibiPositionalBias
from .dynamic import DynamicPositionBias
from .infused import PositionInfusion
from .provider import PositionProvider
from .rotary import RotaryEmbedding
from .t5 import T5RelativePositionBias

SCORE_BIASES = ("rel_pos_bias", "dynamic_pos_bias", "alibi_pos_bias")
# keyword -> the switches (any of) that it configures; set without them it would do nothing
REQUIRES = {
    "rotary_emb_dim": ("rotary_pos_emb", "rotary_xpos"),
    "rotary_theta": ("rotary_pos_emb", "rotary_xpos"),
    "rotary_xpos_scale_base": ("rotary_xpos",),
    "rel_pos_num_buckets": ("rel_pos_bias",),
    "rel_pos_max_distance": ("rel_pos_bias",),
    "dynamic_pos_bias_log_distance": ("dynamic_pos_bias",),
    "alibi_num_heads": ("alibi_pos_bias",),
    "rel_pos_kwargs": SCORE_BIASES,
}
# rel_pos_kwargs: switch -> {key the dict may hold: the keyword that sets the same thing}
REL_POS_KWARGS = {
    "rel_pos_bias": {
        "num_buckets": "rel_pos_num_buckets",
        "max_distance": "rel_pos_max_distance",
    },
    "dynamic_pos_bias": {"depth": None, "log_distance": "dynamic_pos_bias_log_distance"},
    "alibi_pos_bias": {"num_alibi_heads": "alibi_num_heads"},
}
DYNAMIC_BIAS_DEPTH = 2


def _defaults() -> dict:
    return {f.name: f.default for f in dataclasses.fields(PositionOptions)}


def active_schemes(options: PositionOptions) -> list[str]:
    """Names of the switches that are on, e.g. ``['rotary_pos_emb', 'alibi_pos_bias']``."""
    switches = ("rotary_pos_emb", "rotary_xpos", *SCORE_BIASES, "position_infused_attn")
    return [name for name in switches if getattr(options, name)]


def check_position_options(config: LayerConfig) -> None:
    """Refuse settings that would be silently ignored or that cannot be combined."""
    options, defaults = config.positions, _defaults()
    for name, parents in REQUIRES.items():
        value = getattr(options, name)
        if value != defaults[name] and not any(getattr(options, p) for p in parents):
            raise ValueError(
                f"'{name}'={value!r} has no effect without "
                + " or ".join(f"'{p}=True'" for p in parents)
            )
    biases = [name for name in SCORE_BIASES if getattr(options, name)]
    if len(biases) > 1:
        raise ValueError(
            f"choose one relative position bias, got {' and '.join(map(repr, biases))}; each is a "
            "complete positional scheme (rotary and position_infused_attn combine with any)"
        )
    if config.only_cross and active_schemes(options):
        raise ValueError(
            f"{', '.join(map(repr, active_schemes(options)))} apply to self-attention, but a "
            "CrossAttender (only_cross=True) has none; cross-attention takes no positions"
        )
    if options.rotary_xpos_scale_base <= 0:
        raise ValueError(
            f"'rotary_xpos_scale_base' must be positive, got {options.rotary_xpos_scale_base}"
        )
    if options.rotary_theta <= 0:
        raise ValueError(f"'rotary_theta' must be positive, got {options.rotary_theta}")


def build_rotary(config: LayerConfig) -> RotaryEmbedding | None:
    """Rotary on the query / key heads (width ``dim_qk``: ``attn_dim_head``, or the shared width
    of collaborative heads); the whole head by default, rounded down to an even width."""
    options = config.positions
    if not (options.rotary_pos_emb or options.rotary_xpos):
        return None
    dim_qk = resolve_head_shapes(config.attention, config.heads, "attn_").dim_qk
    dim = dim_qk - dim_qk % 2 if options.rotary_emb_dim is None else options.rotary_emb_dim
    if dim < 2 or dim % 2 or dim > dim_qk:
        raise ValueError(
            f"'rotary_emb_dim' must be even, >= 2 and at most the query / key head width "
            f"{dim_qk}, got {dim}"
        )
    xpos_scale_base = options.rotary_xpos_scale_base if options.rotary_xpos else None
    return RotaryEmbedding(dim, theta=options.rotary_theta, xpos_scale_base=xpos_scale_base)


def score_bias_kwargs(options: PositionOptions, switch: str, given: dict) -> dict:
    """The bias module's keyword arguments: those of the options, updated by ``rel_pos_kwargs``
    (a key also set by its own keyword is refused, naming both)."""
    extra, defaults = dict(options.rel_pos_kwargs or {}), _defaults()
    valid = REL_POS_KWARGS[switch]
    for key in extra:
        if key not in valid:
            raise TypeError(
                f"'rel_pos_kwargs' key {key!r} is not an argument of the {switch!r} bias; "
                f"valid keys: {sorted(valid)}"
            )
        keyword = valid[key]
        if keyword is not None and getattr(options, keyword) != defaults[keyword]:
            raise ValueError(
                f"'rel_pos_kwargs' sets {key!r} and '{keyword}' sets it too; give only one"
            )
    return {**given, **extra}


def build_score_bias(config: LayerConfig) -> nn.Module | None:
    """The (single) additive score bias, shared by every self-attention block of the stack."""
    options, heads, causal = config.positions, config.heads, config.causal
    if options.rel_pos_bias:
        given = {
            "num_buckets": options.rel_pos_num_buckets,
            "max_distance": options.rel_pos_max_distance,
        }
        kwargs = score_bias_kwargs(options, "rel_pos_bias", given)
        return T5RelativePositionBias(heads, causal=causal, **kwargs)
    if options.dynamic_pos_bias:
        given = {
            "depth": DYNAMIC_BIAS_DEPTH,
            "log_distance": options.dynamic_pos_bias_log_distance,
        }
        kwargs = score_bias_kwargs(options, "dynamic_pos_bias", given)
        return DynamicPositionBias(max(config.dim // 4, 8), heads, **kwargs)
    if options.alibi_pos_bias:
        given = {"num_alibi_heads": options.alibi_num_heads}
        kwargs = score_bias_kwargs(options, "alibi_pos_bias", given)
        return AlibiPositionalBias(heads, causal=causal, **kwargs)
    return None


def build_positions(config: LayerConfig) -> PositionProvider | None:
    """One provider for the stack, or None when no positional scheme is on."""
    check_position_options(config)
    infused = config.positions.position_infused_attn
    schemes = {
        "rotary": build_rotary(config),
        "score_bias": build_score_bias(config),
        "infusion": PositionInfusion(config.dim) if infused else None,
    }
    if all(scheme is None for scheme in schemes.values()):
        return None
    return PositionProvider(**schemes)
