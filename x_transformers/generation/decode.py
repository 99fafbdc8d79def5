"""Decoding: prefill and single steps, with a KV cache or by recomputation, behind one interface.

:func:`decode_step` is the compile-friendly unit: one forward of the newest positions against a
cache (with a :class:`~.kv_cache.StaticKVCache` it has static shapes and no host sync, so
``torch.compile(decode_step, fullgraph=True)`` compiles it once). :class:`DecodeSession` keeps
the growing sequence of a batch and decides, step by step, how the next output is computed:

- with a cache: the prompt is prefilled once, then each step feeds only the newest position;
- without one (``cache_kv=False``, or a feature that cannot be cached): the last ``max_seq_len``
  positions are recomputed every step.

Beyond ``max_seq_len`` the window slides. A dynamic cache slides by dropping its oldest keys when
positions allow it (relative positions only: no absolute position embedding, no memory tokens,
whose positions are tied to the window start); otherwise the session switches to recomputing the
window and says so once. The session knows the model only through the
:class:`~.interface.DecodingSpec` it declares (window, absolute positions, memory tokens).

Prompts of different lengths are left-padded (:func:`left_pad_prompts`): padded positions are
masked as keys, and every position of a row is counted from its first real token
(``seq_start_pos``): the absolute embedding, the positions of rotary, xPos and
position-infused attention (per row, in the layer stack's position span), and the memory tokens,
which the wrapper places right before each row's first real token, so that token shift reads
them rather than padding. Every row gets what it would get alone
(``tests/properties/test_ragged.py`` checks it for every feature of the matrix).

Shape letters: b batch, n sequence, v vocabulary (or output width).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .interface import DecodingSpec, cache_capacity
from .kv_cache import DynamicKVCache, StaticKVCache

CACHE_KINDS = ("dynamic", "static")
# frames inside these packages are skipped when warning, so a warning points at the user's line
_INTERNAL = tuple(str(Path(f).parent) for f in (Path(__file__).parent, torch.__file__))


def warn_user(message: str) -> None:
    """``warnings.warn`` attributed to the first caller outside x_transformers and torch: the
    user's line (so that the default filter shows it once per call site)."""
    frame, level = sys._getframe(1), 2  # level 1 is warn_user itself
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


@dataclass
class PromptBatch:
    """Left-padded prompts: ``tokens`` (b, n); ``mask`` (b, n) True = real token, and
    ``start_positions`` (b,) index of each row's first real token (both None when no row is
    padded); ``unbatched`` when a single 1-D prompt was given."""

    tokens: Tensor
    mask: Tensor | None = None
    start_positions: Tensor | None = None
    unbatched: bool = False


def left_pad_prompts(
    prompts: Tensor | Sequence[Tensor], prompt_lens: Tensor | None = None, pad_value: int = 0
) -> PromptBatch:
    """A (n,) prompt, a (b, n) batch, a (b, n) batch left-padded with ``prompt_lens`` (b,) real
    tokens per row, or a list of 1-D prompts of different lengths (left-padded here)."""
    if isinstance(prompts, (list, tuple)):
        if prompt_lens is not None:
            raise ValueError("'prompt_lens' is only for a left-padded tensor, not a list")
        if not prompts or any(p.ndim != 1 or p.numel() == 0 for p in prompts):
            shapes = [tuple(p.shape) for p in prompts]
            raise ValueError(f"a list of prompts must hold non-empty 1-D tensors, got {shapes}")
        longest = max(p.shape[0] for p in prompts)
        lens = torch.tensor([p.shape[0] for p in prompts], device=prompts[0].device)
        padded = [nn.functional.pad(p, (longest - p.shape[0], 0), value=pad_value) for p in prompts]
        return _with_lens(torch.stack(padded), lens)
    if not isinstance(prompts, Tensor):
        raise TypeError(
            f"prompts must be a tensor or a list of 1-D tensors, got {type(prompts).__name__}"
        )
    if prompts.ndim == 1:
        if prompts.numel() == 0:
            raise ValueError("prompts must not be empty: got a prompt of length 0")
        if prompt_lens is not None:
            raise ValueError("'prompt_lens' needs a batch of prompts (b, n)")
        return PromptBatch(prompts[None], unbatched=True)
    if prompts.ndim < 2 or prompts.shape[1] < 1:
        raise ValueError(f"prompts must have shape (batch, len >= 1), got {tuple(prompts.shape)}")
    if prompt_lens is None:
        return PromptBatch(prompts)
    lens = torch.as_tensor(prompt_lens, device=prompts.device)
    if lens.shape != prompts.shape[:1] or lens.min() < 1 or lens.max() > prompts.shape[1]:
        raise ValueError(
            f"'prompt_lens' must hold {prompts.shape[0]} lengths in [1, {prompts.shape[1]}], "
            f"got {lens.tolist()}"
        )
    return _with_lens(prompts, lens)


def _with_lens(tokens: Tensor, lens: Tensor) -> PromptBatch:
    length = tokens.shape[1]
    if bool((lens == length).all()):
        return PromptBatch(tokens)
    start_positions = length - lens  # (b,)
    mask = torch.arange(length, device=tokens.device)[None, :] >= start_positions[:, None]
    return PromptBatch(tokens, mask, start_positions)


def decode_step(net: nn.Module, inputs: Tensor, cache, **layer_inputs) -> Tensor:
    """Outputs of the last position (b, v) after feeding ``inputs`` (b, n, ...) to ``net`` on top
    of ``cache``; compile this with a static cache for fast decoding."""
    return net(inputs, cache=cache, **layer_inputs)[:, -1]


@contextlib.contextmanager
def eval_mode(net: nn.Module):
    """Run the block with ``net`` in eval mode; afterwards, also when the block raises, every
    submodule gets back its own train / eval mode (a frozen part may have been in eval mode)."""
    modes = [(module, module.training) for module in net.modules()]
    net.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def make_cache(spec: DecodingSpec, cache_kv: bool, cache_kind: str, capacity: int, where: str):
    """A fresh cache for a model declaring ``spec``, or None when ``cache_kv`` is off or a
    feature prevents it (then a warning names the feature)."""
    if cache_kind not in CACHE_KINDS:
        raise ValueError(f"cache_kind must be one of {CACHE_KINDS}, got {cache_kind!r}")
    if not cache_kv:
        return None
    if spec.kv_cache_blockers:
        warn_user(
            f"{where}(cache_kv=True) recomputes every step: "
            f"{', '.join(map(repr, spec.kv_cache_blockers))} cannot use the KV cache"
        )
        return None
    if cache_kind == "dynamic":
        return DynamicKVCache(capacity)
    return StaticKVCache(capacity, read_written_only=True)


def open_session(
    net: nn.Module,
    spec: DecodingSpec,
    prompt_length: int,
    num_new: int,
    *,
    cache_kv: bool,
    cache_kind: str,
    layer_inputs: dict,
    where: str,
) -> DecodeSession:
    """A :class:`DecodeSession` for ``num_new`` steps after a prompt of ``prompt_length``, with a
    cache sized by :func:`~.interface.cache_capacity`."""
    capacity = cache_capacity(spec, prompt_length, num_new)
    cache = make_cache(spec, cache_kv, cache_kind, capacity, where)
    return DecodeSession(net, cache, spec, layer_inputs)


class DecodeSession:
    """The growing sequence of one generation call and how its next outputs are computed.

    Args:
        net: a wrapper whose forward takes ``(x, mask=, cache=, **layer_inputs)`` and returns
            (b, n, v); ``seq_start_pos=`` is passed only for left-padded prompts.
        cache: a fresh cache, or None to recompute every step.
        spec: what the model declares for decoding (its window is ``spec.max_seq_len``).
        layer_inputs: extra forward keywords given on every call (``context``, ...).
    """

    def __init__(self, net: nn.Module, cache, spec: DecodingSpec, layer_inputs: dict | None = None):
        self.net, self.cache, self.window = net, cache, spec.max_seq_len
        self.layer_inputs = dict(layer_inputs or {})
        self.history: Tensor | None = None  # (b, n, ...) every position so far
        self.mask: Tensor | None = None  # (b, n) True = real position
        self.start_positions: Tensor | None = None  # (b,)
        self.num_cached = 0  # sequence positions in the cache (memory tokens not counted)
        self.slide_blocker = spec.sliding_blocker

    def prefill(
        self, inputs: Tensor, mask: Tensor | None = None, start_positions: Tensor | None = None
    ) -> Tensor:
        """Start from ``inputs`` (b, n, ...); returns the outputs of the last position."""
        self.history, self.mask, self.start_positions = inputs, mask, start_positions
        if self.cache is None:
            return self._recompute()
        window, mask, start_positions = self._window()
        self.num_cached = window.shape[1]
        return self._forward(window, mask, start_positions, self.cache)

    def step(self, new: Tensor) -> Tensor:
        """Append ``new`` (b, 1, ...) and return the outputs of the last position."""
        self.history = torch.cat((self.history, new), dim=1)
        if self.mask is not None:
            grown = self.mask.new_ones(self.mask.shape[0], new.shape[1])  # bool, all visible
            self.mask = torch.cat((self.mask, grown), dim=1)
        if self.cache is not None and self.num_cached + new.shape[1] > self.window:
            self._make_room(new.shape[1])
        if self.cache is None:
            return self._recompute()
        self.num_cached += new.shape[1]
        return self._forward(new, None, self.start_positions, self.cache)

    def reorder(self, indices: Tensor) -> None:
        """Select / repeat batch rows: row r becomes old row ``indices[r]`` (beam search)."""
        self.history = self.history[indices]
        if self.mask is not None:
            self.mask = self.mask[indices]
        if self.start_positions is not None:
            self.start_positions = self.start_positions[indices]
        if self.cache is not None:
            self.cache.reorder(indices)

    def _make_room(self, num_new: int) -> None:
        keep = self.window - num_new
        if isinstance(self.cache, DynamicKVCache) and self.slide_blocker is None and keep > 0:
            self.cache.keep_last(keep)
            self.num_cached = keep
            return
        reason = self.slide_blocker or "a static cache has a fixed size"
        warn_user(
            f"generation past max_seq_len={self.window}: the KV cache cannot slide ({reason}); "
            "recomputing the last max_seq_len positions every step from here"
        )
        self.cache = None

    def _window(self):
        """The last ``window`` positions, their mask and their start positions."""
        cut = max(self.history.shape[1] - self.window, 0)
        mask = None if self.mask is None else self.mask[:, cut:]
        start_positions = self.start_positions
        if start_positions is not None and cut > 0:
            start_positions = (start_positions - cut).clamp(min=0)
        return self.history[:, cut:], mask, start_positions

    def _recompute(self) -> Tensor:
        window, mask, start_positions = self._window()
        return self._forward(window, mask, start_positions, None)

    def _forward(self, inputs, mask, start_positions, cache) -> Tensor:
        extra = {} if start_positions is None else {"seq_start_pos": start_positions}
        if cache is None:
            return self.net(inputs, mask=mask, **extra, **self.layer_inputs)[:, -1]
        return decode_step(self.net, inputs, cache, mask=mask, **extra, **self.layer_inputs)
