"""The layout of a layer stack as a pure function: options -> a plan of block kinds.

'a' is self-attention, 'c' cross-attention, 'f' feedforward. A layout is first written with
'a' and 'f' only, then cross-attention is inserted: with ``cross_attend`` a 'c' follows every
'a'; in a ``CrossAttender`` (``only_cross``) every 'a' becomes a 'c'. For depth 2:

=======================  =========================================================
layout                   plan
=======================  =========================================================
default                  a f a f
macaron (1906.02762)     f a f f a f            (each 'f' a half step)
sandwich_coef=k          a^k (a f)^(depth-k) f^k (1911.03864)
par_ratio=r (2009.04534) 2 * depth blocks, one 'a' per r blocks, spread over the
                         first two thirds of the stack, 'f' everywhere else
custom_layers            exactly the tuple given
=======================  =========================================================
"""

from __future__ import annotations

from collections.abc import Sequence

from ..options import LayerConfig

SELF_ATTENTION, CROSS_ATTENTION, FEEDFORWARD = "a", "c", "f"
BLOCK_KINDS = (SELF_ATTENTION, CROSS_ATTENTION, FEEDFORWARD)


def plan_layers(config: LayerConfig) -> tuple[str, ...]:
    """Block kinds in order, e.g. ``('a', 'f', 'a', 'f')`` for depth 2."""
    blocks = config.blocks
    return layer_plan(
        config.depth,
        cross_attend=config.cross_attend,
        only_cross=config.only_cross,
        macaron=blocks.macaron,
        sandwich_coef=blocks.sandwich_coef,
        custom_layers=blocks.custom_layers,
        par_ratio=blocks.par_ratio,
    )


def layer_plan(
    depth: int,
    *,
    cross_attend: bool = False,
    only_cross: bool = False,
    macaron: bool = False,
    sandwich_coef: int | None = None,
    custom_layers: Sequence[str] | None = None,
    par_ratio: int | None = None,
) -> tuple[str, ...]:
    """The plan of block kinds for the given layout keywords (at most one layout at a time)."""
    if custom_layers is not None:
        return _checked_custom_layers(tuple(custom_layers), cross_attend, only_cross)
    if macaron:
        pattern = (FEEDFORWARD, SELF_ATTENTION, FEEDFORWARD) * depth
    elif sandwich_coef is not None:
        pattern = _sandwich(depth, sandwich_coef)
    elif par_ratio is not None:
        pattern = _par(depth, par_ratio)
    else:
        pattern = (SELF_ATTENTION, FEEDFORWARD) * depth
    return _insert_cross_attention(pattern, cross_attend, only_cross)


def _sandwich(depth: int, coef: int) -> tuple[str, ...]:
    """Sandwich transformer (Press et al., 1911.03864): ``s^k (sf)^(n-k) f^k``."""
    if not 1 <= coef <= depth:
        raise ValueError(f"'sandwich_coef' must lie in [1, depth={depth}], got {coef}")
    return (
        (SELF_ATTENTION,) * coef
        + (SELF_ATTENTION, FEEDFORWARD) * (depth - coef)
        + (FEEDFORWARD,) * coef
    )


def _par(depth: int, ratio: int) -> tuple[str, ...]:
    """PAR transformer (Mandava et al., 2009.04534): the same budget of ``2 * depth`` blocks,
    one attention block per ``ratio`` blocks, evenly spread over the first two thirds (where the
    paper finds attention is needed); feedforwards everywhere else."""
    total = 2 * depth
    if not 2 <= ratio <= total:
        raise ValueError(f"'par_ratio' must lie in [2, 2 * depth = {total}], got {ratio}")
    num_attention = total // ratio
    cut = -(-2 * total // 3)  # ceil(2/3 of the blocks)
    attention_at = {i * cut // num_attention for i in range(num_attention)}
    return tuple(SELF_ATTENTION if i in attention_at else FEEDFORWARD for i in range(total))


def _insert_cross_attention(
    pattern: tuple[str, ...], cross_attend: bool, only_cross: bool
) -> tuple[str, ...]:
    if only_cross:
        return tuple(CROSS_ATTENTION if kind == SELF_ATTENTION else kind for kind in pattern)
    if not cross_attend:
        return pattern
    plan: list[str] = []
    for kind in pattern:
        plan += [kind, CROSS_ATTENTION] if kind == SELF_ATTENTION else [kind]
    return tuple(plan)


def _checked_custom_layers(
    layers: tuple[str, ...], cross_attend: bool, only_cross: bool
) -> tuple[str, ...]:
    unknown = [kind for kind in layers if kind not in BLOCK_KINDS]
    if not layers or unknown:
        raise ValueError(
            f"'custom_layers' must be a non-empty tuple of 'a', 'c', 'f'; got {layers!r}"
        )
    has_cross = CROSS_ATTENTION in layers
    if only_cross and SELF_ATTENTION in layers:
        raise ValueError(f"a CrossAttender has no self-attention; 'custom_layers'={layers!r}")
    if (cross_attend or only_cross) and not has_cross:
        raise ValueError(f"cross_attend=True but 'custom_layers'={layers!r} has no 'c' block")
    if has_cross and not (cross_attend or only_cross):
        raise ValueError(
            f"'custom_layers'={layers!r} has 'c' blocks; build the stack with cross_attend=True"
        )
    return layers
