"""Turning keyword arguments into typed options: the only place where prefixes are split.

``attn_*`` keywords go to every attention block, ``cross_attn_*`` to cross-attention only (after
the ``attn_*`` ones), ``ff_*`` to every feedforward; stack keywords (norms, layout, positions) are
taken by name. Older spellings from earlier versions of the README are mapped with a
``DeprecationWarning``. An unknown keyword raises ``TypeError`` naming the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .attention import AttentionOptions
from .blocks import BlockOptions
from .feedforward import FeedForwardOptions
from .positions import PositionOptions
from .spec import option_names
from .wrapper import WrapperOptions

STACK_GROUPS: dict[str, type] = {"blocks": BlockOptions, "positions": PositionOptions}
PREFIX_GROUPS: dict[str, tuple[str, type]] = {
    # prefix -> (group name, options class); longest prefix first
    "cross_attn_": ("cross_attention", AttentionOptions),
    "attn_": ("attention", AttentionOptions),
    "ff_": ("feedforward", FeedForwardOptions),
}


def _qk_norm_scale_from_seq_len(seq_len: int) -> float:
    # the QK-norm paper initialises the scale g to log2(L^2 - L) for sequence length L
    if seq_len < 2:
        raise ValueError(f"qk_norm_attn_seq_len must be >= 2, got {seq_len}")
    return math.log2(seq_len**2 - seq_len)


# old spelling -> (current spelling, value transform)
LEGACY_ALIASES: dict[str, tuple[str, Callable[[Any], Any] | None]] = {
    "dim_head": ("attn_dim_head", None),
    "talking_heads": ("attn_talking_heads", None),
    "alibi_pos_emb": ("alibi_pos_bias", None),
    "use_qk_norm_attn": ("attn_qk_norm", None),
    "qk_norm_attn_seq_len": ("attn_qk_norm_scale", _qk_norm_scale_from_seq_len),
}


@dataclass(frozen=True)
class LayerConfig:
    """Everything that describes a layer stack, parsed and validated once."""

    dim: int
    depth: int
    heads: int
    causal: bool
    cross_attend: bool
    only_cross: bool
    attention: AttentionOptions
    cross_attention: AttentionOptions
    feedforward: FeedForwardOptions
    blocks: BlockOptions
    positions: PositionOptions


# another spelling of a constructor argument of the layer stacks (no warning: both are current)
CONTEXT_WIDTH_ALIAS = "cross_attn_dim_context"


def resolve_context_width(
    dim_context: int | None, kwargs: dict[str, Any], where: str
) -> tuple[int | None, dict[str, Any]]:
    """``cross_attn_dim_context`` is ``dim_context`` (the width of the cross-attention context)
    spelled with the cross-attention prefix; giving both with different values is refused."""
    if CONTEXT_WIDTH_ALIAS not in kwargs:
        return dim_context, kwargs
    kwargs = dict(kwargs)
    alias = kwargs.pop(CONTEXT_WIDTH_ALIAS)
    if dim_context is not None and dim_context != alias:
        raise ValueError(
            f"{where}: 'dim_context'={dim_context} and '{CONTEXT_WIDTH_ALIAS}'={alias} name the "
            "same width; give one of them"
        )
    return alias, kwargs


def layer_keyword_names() -> list[str]:
    names = [n for cls in STACK_GROUPS.values() for n in option_names(cls)]
    for prefix, (_, cls) in PREFIX_GROUPS.items():
        names += [prefix + n for n in option_names(cls)]
    return names + list(LEGACY_ALIASES) + [CONTEXT_WIDTH_ALIAS]


def wrapper_keyword_names() -> list[str]:
    return list(option_names(WrapperOptions))


def unknown_keyword_error(key: str, valid: Iterable[str], where: str) -> TypeError:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return TypeError(f"{where} got an unknown keyword argument '{key}'{hint}")


def _resolve_alias(key: str, value: Any, shown: str) -> tuple[str, Any]:
    if key not in LEGACY_ALIASES:
        return key, value
    new, transform = LEGACY_ALIASES[key]
    warnings.warn(
        f"'{shown}' is an older spelling of '{new}'; it still works but may be removed",
        DeprecationWarning,
        stacklevel=4,
    )
    return new, transform(value) if transform is not None else value


def _check_type(cls: type, name: str, value: Any, shown: str) -> None:
    annotation = {f.name: f.type for f in dataclasses.fields(cls)}[name]
    allowed: list[type] = []
    for part in str(annotation).replace(" ", "").split("|"):
        allowed += {
            "bool": [bool],
            "int": [int],
            "float": [int, float],
            "dict": [dict],
            "None": [type(None)],
        }.get(part, [tuple, list] if part.startswith("tuple") else [object])
    is_bool_for_number = isinstance(value, bool) and bool not in allowed
    if not isinstance(value, tuple(allowed)) or is_bool_for_number:
        raise TypeError(f"'{shown}' expects {annotation}, got {value!r} ({type(value).__name__})")


def _build(cls: type, values: Mapping[str, tuple[Any, str]], base: Any = None) -> Any:
    """Instantiate ``cls`` from ``{field: (value, spelling the user typed)}``, checking each
    value's type against the field's annotation."""
    for name, (value, shown) in values.items():
        _check_type(cls, name, value, shown)
    kwargs = {name: value for name, (value, _) in values.items()}
    if base is not None:
        return dataclasses.replace(base, **kwargs)
    return cls(**kwargs)


def parse_layer_kwargs(
    *,
    dim: int,
    depth: int,
    heads: int,
    causal: bool,
    cross_attend: bool,
    only_cross: bool,
    kwargs: Mapping[str, Any],
    where: str,
    shown_prefix: str = "",
    dim_context: int | None = None,
) -> LayerConfig:
    """Route the feature keywords of ``Encoder``/``Decoder``/``CrossAttender`` into options.

    Keywords that only act on cross-attention (``cross_attn_*``, ``cross_residual_attn``,
    ``dim_context``) raise ``ValueError`` without ``cross_attend=True`` (or ``only_cross``):
    nothing is silently ignored."""
    for name, value in (("dim", dim), ("depth", depth), ("heads", heads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{where}: '{name}' must be a positive int, got {value!r}")
    groups: dict[str, dict[str, tuple[Any, str]]] = {
        g: {} for g in (*STACK_GROUPS, "attention", "cross_attention", "feedforward")
    }
    stack_fields = {n: g for g, cls in STACK_GROUPS.items() for n in option_names(cls)}
    for key, value in kwargs.items():
        shown = shown_prefix + key
        key, value = _resolve_alias(key, value, shown)
        if key in stack_fields:
            groups[stack_fields[key]][key] = (value, shown)
            continue
        for prefix, (group, cls) in PREFIX_GROUPS.items():
            if key.startswith(prefix) and key[len(prefix) :] in option_names(cls):
                groups[group][key[len(prefix) :]] = (value, shown)
                break
        else:
            constructor_args = (
                "dim",
                "depth",
                "heads",
                "cross_attend",
                "only_cross",
                "dim_context",
            )
            valid = [shown_prefix + n for n in (*constructor_args, *layer_keyword_names())]
            raise unknown_keyword_error(shown, valid, where)
    if not (cross_attend or only_cross):
        _refuse_cross_keywords(groups, dim_context, where, shown_prefix)
    attention = _build(AttentionOptions, groups["attention"])
    return LayerConfig(
        dim=dim,
        depth=depth,
        heads=heads,
        causal=causal,
        cross_attend=cross_attend,
        only_cross=only_cross,
        attention=attention,
        cross_attention=_build(AttentionOptions, groups["cross_attention"], base=attention),
        feedforward=_build(FeedForwardOptions, groups["feedforward"]),
        blocks=_build(BlockOptions, groups["blocks"]),
        positions=_build(PositionOptions, groups["positions"]),
    )


# stack keywords that act on cross-attention blocks only
CROSS_ONLY_STACK_KEYWORDS = ("cross_residual_attn",)


def _refuse_cross_keywords(groups: dict, dim_context, where: str, shown_prefix: str) -> None:
    """Keywords that would do nothing because the stack has no cross-attention."""
    shown = [spelling for _, spelling in groups["cross_attention"].values()]
    shown += [
        spelling
        for name, (value, spelling) in groups["blocks"].items()
        if name in CROSS_ONLY_STACK_KEYWORDS and value
    ]
    if dim_context is not None:
        shown.append(shown_prefix + "dim_context")
    if shown:
        act, them = ("acts", "it") if len(shown) == 1 else ("act", "them")
        raise ValueError(
            f"{where}: {', '.join(map(repr, shown))} only {act} on cross-attention; build the "
            f"stack with {shown_prefix}cross_attend=True (or use CrossAttender), or drop {them}"
        )


def parse_wrapper_kwargs(kwargs: Mapping[str, Any], where: str, extra_valid: Iterable[str] = ()):
    """Route the keyword arguments of a model wrapper into :class:`WrapperOptions`."""
    valid = option_names(WrapperOptions)
    values = {}
    for key, value in kwargs.items():
        if key not in valid:
            raise unknown_keyword_error(key, [*valid, *extra_valid], where)
        values[key] = (value, key)
    return _build(WrapperOptions, values)
