"""Declared attention stages: the open mechanism through which variants transform attention.

A variant of attention is a small module, an :class:`AttentionStage`, that declares

- ``keyword``: the keyword that turned it on (for error messages and ``Attend.fused_reason``);
- ``point``: where in the pipeline it acts (one of :data:`STAGE_POINTS`, below);
- ``fused``: whether ``F.scaled_dot_product_attention`` can still run with it. Stages that act on
  the score matrix or the weights cannot (the fused kernel never materialises them); stages on
  the projected heads, the keys or the output can;
- ``state_key``: what it hands to later blocks through the per-forward :class:`ForwardState`, if
  anything (a key its feature owns, e.g. ``'residual_attn'``).

The pipeline of one attention call, with the call signature of each point::

    Attention: project -> split heads
      'projected'   (q, k, v)            -> (q, k, v)   per-head tensors of the new positions,
                                                          before positions and the KV cache
               -> positions -> KV cache -> memory key/values
      'keys'        (k, v, mask, bias)   -> (k, v, mask, bias)   every key of this call
    Attend:
      'similarity'  (q, k)               -> (q, k)      just before q.k, on both kernel paths
               -> scores = scale * q.k
      'scores'      (scores)             -> scores      raw scores, before bias and mask
               -> + bias -> mask
      'masked'      (scores)             -> scores      after bias and mask
      'normalize'   (scores)             -> weights     replaces the softmax (at most one)
      'weights'     (weights)            -> weights     before dropout and aggregation
    Attention:
      'output'      (out, x)             -> out         per-head output (b, h, n, d) and the
                                                          block input x, before merging heads

Every stage is called with the tensors of its point and ``state=`` (the forward's state, or
None when the attention is used on its own). Stages at one point run in the order the builder
lists them. Adding a variant is: an option field, its stage module, one builder line (in
:func:`x_transformers.attention.builder.build_stages`), one feature-matrix row.

Shape letters: b batch, h heads, i queries, j keys, d head width.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

PROJECTED, KEYS, SIMILARITY, SCORES, MASKED, NORMALIZE, WEIGHTS, OUTPUT = (
    "projected",
    "keys",
    "similarity",
    "scores",
    "masked",
    "normalize",
    "weights",
    "output",
)
STAGE_POINTS = (PROJECTED, KEYS, SIMILARITY, SCORES, MASKED, NORMALIZE, WEIGHTS, OUTPUT)
# the points run by the kernel (Attend); the others by the multi-head module (Attention)
KERNEL_POINTS = (SIMILARITY, SCORES, MASKED, NORMALIZE, WEIGHTS)
# the points that only exist on the explicit path: a stage there can never be fused
MATRIX_POINTS = (SCORES, MASKED, NORMALIZE, WEIGHTS)
# trailing arguments a stage reads but does not return (the block input x at 'output')
_CONTEXT_ARGS = {OUTPUT: 1}


class ForwardState:
    """What blocks hand to later blocks during one forward of a layer stack.

    Each entry lives under a key owned by the feature that writes it (its keyword, e.g.
    ``'residual_attn'`` or ``'add_value_residual'``); the stack creates one per forward and
    passes it along without knowing what it holds.
    """

    def __init__(self):
        self._entries: dict[str, Any] = {}
        # values derived once per forward and reused by every block (e.g. Attend's combined
        # masks), keyed by their owner; not data handed between blocks, so not in keys()
        self.derived: dict[Any, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self._entries.get(key, default)

    def put(self, key: str, value: Any) -> None:
        self._entries[key] = value

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def keys(self) -> tuple[str, ...]:
        return tuple(self._entries)


class AttentionStage(nn.Module):
    """Base class of a declared attention stage (see the module docstring).

    Subclasses set ``point`` (and ``fused`` / ``state_key`` where they differ from the defaults)
    as class attributes, or pass them to ``__init__`` when one module serves several points.
    """

    point: str = ""
    fused: bool = True
    state_key: str | None = None

    def __init__(self, keyword: str, *, point: str | None = None, state_key: str | None = None):
        super().__init__()
        self.keyword = keyword
        if point is not None:
            self.point = point
        if state_key is not None:
            self.state_key = state_key
        if self.point not in STAGE_POINTS:
            raise ValueError(
                f"{type(self).__name__} ('{keyword}') declares point {self.point!r}; expected one "
                f"of {STAGE_POINTS}"
            )
        if self.point in MATRIX_POINTS and self.fused:
            raise ValueError(
                f"{type(self).__name__} ('{keyword}') acts at {self.point!r}, which only the "
                "explicit path materialises; it must declare fused = False"
            )

    def extra_repr(self) -> str:
        return f"keyword={self.keyword!r}, point={self.point!r}"


class StageList(nn.Module):
    """Stages grouped by point, run in the declared order."""

    def __init__(self, stages: Iterable[AttentionStage] = ()):
        super().__init__()
        stages = list(stages)
        normalizers = [s.keyword for s in stages if s.point == NORMALIZE]
        if len(normalizers) > 1:
            raise ValueError(
                f"{' and '.join(map(repr, normalizers))} each replace the softmax; choose one"
            )
        self.stages = nn.ModuleList(stages)
        self._by_point = {point: [s for s in stages if s.point == point] for point in STAGE_POINTS}

    def at(self, point: str) -> list[AttentionStage]:
        return self._by_point[point]

    def only(self, points: Iterable[str]) -> StageList:
        """The stages at ``points`` (sharing the modules)."""
        points = tuple(points)
        return StageList(s for s in self.stages if s.point in points)

    def not_fused(self) -> tuple[str, ...]:
        """The keywords of the stages the fused kernel cannot express (no repeats)."""
        return tuple(dict.fromkeys(s.keyword for s in self.stages if not s.fused))

    def run(self, point: str, *tensors, state: ForwardState | None = None):
        """Apply the stages at ``point`` in order; returns what the point transforms (one tensor
        or a tuple), without its read-only context arguments."""
        split = len(tensors) - _CONTEXT_ARGS.get(point, 0)
        stages = self._by_point[point]
        if not stages:  # the common case, several times per block
            return tensors[0] if split == 1 else tensors[:split]
        carried, context = tensors[:split], tensors[split:]
        for stage in stages:
            out = stage(*carried, *context, state=state)
            carried = out if isinstance(out, tuple) else (out,)
        return carried[0] if len(carried) == 1 else carried

    def __len__(self) -> int:
        return len(self.stages)

    def has(self, point: str) -> bool:
        return bool(self._by_point[point])
