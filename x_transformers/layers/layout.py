"""The layout of a layer stack as a pure function: options -> a plan of block kinds.

'a' is self-attention, 'c' cross-attention, 'f' feedforward.
"""

from __future__ import annotations

from ..options import LayerConfig

SELF_ATTENTION, CROSS_ATTENTION, FEEDFORWARD = "a", "c", "f"


def plan_layers(config: LayerConfig) -> tuple[str, ...]:
    """Block kinds in order, e.g. ``('a', 'f', 'a', 'f')`` for depth 2."""
    if config.only_cross:
        unit = (CROSS_ATTENTION, FEEDFORWARD)
    elif config.cross_attend:
        unit = (SELF_ATTENTION, CROSS_ATTENTION, FEEDFORWARD)
    else:
        unit = (SELF_ATTENTION, FEEDFORWARD)
    return unit * config.depth
