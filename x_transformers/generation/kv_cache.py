"""The KV cache: keys and values of past positions, kept between forwards so that a decode step
only projects the new token (as in "Attention Is All You Need", 1706.03762, section 3.2, read
incrementally; the static layout follows gpt-fast / torchtune).

One protocol, two implementations:

- :class:`DynamicKVCache` grows with every forward (buffers that double when full, sized up front
  when ``generate`` knows the length: ``reserve``); its position is a Python int. It is the
  default and the fallback for inherently dynamic uses (sliding windows, beam search, anything
  of unknown length).
- :class:`StaticKVCache` is preallocated for ``capacity`` positions; its write position is a
  tensor advanced in place (no ``.item()``), so a single decode step has static shapes and runs
  under ``torch.compile(fullgraph=True)``.

The protocol, as the layer stack and the attention blocks use it (duck-typed)::

    span = cache.position_span(n)            # {'offset', 'num_keys', 'key_start', 'num_new_keys'}
    mask = cache.visible_keys(x, mask)       # (b, 1, i, j) key mask of this forward, or None
    slot = cache.slot(index, context=False)  # handed to each attention block, which does:
    kv_input = slot.pending(kv_input)        #   the inputs whose keys / values are not cached
    k, v = slot.extend(k, v)                 #   their keys / values (rotated) joined to the cache
    cache.advance(num_new)                   # once, at the end of the stack forward

A self-attention slot appends the new keys; a context (cross-attention) slot stores the keys of
the context on the first call and afterwards reports nothing pending (an empty input, which costs
nothing to project), so the context is projected once.

Each feature that cannot run with a cache declares it on its module: ``supports_kv_cache = False``
and, to be named in messages, ``kv_cache_keyword = 'shift_tokens'`` (the keyword that turns it
on; the class name is used otherwise). :func:`kv_cache_blockers` collects them; the stack raises
one error naming them, and ``generate`` recomputes instead and says once why.

Shape letters: b batch, h (key/value) heads, i queries, j keys, d head dimension.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..backend import index_copy_
from ..layers.past import check_cache, kv_cache_blockers  # noqa: F401  (re-exported)

KeysValues = tuple[Tensor, Tensor]


class ContextSlot:
    """Cross-attention keys / values of the context: computed on the first call, then reused."""

    def __init__(self):
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    def pending(self, inputs: Tensor) -> Tensor:
        """(b, j, d) context -> itself on the first call, then (b, 0, d)."""
        return inputs if self.keys is None else inputs[:, :0]

    def extend(self, keys: Tensor, values: Tensor) -> KeysValues:
        if self.keys is None:
            self.keys, self.values = keys, values
        return self.keys, self.values

    def reorder(self, indices: Tensor) -> None:
        if self.keys is not None:
            self.keys, self.values = self.keys[indices], self.values[indices]


class DynamicSlot:
    """Self-attention keys / values of one block, appended along j.

    Appends write into buffers that grow geometrically (amortised O(1) per step, as a list
    grows) and return views of the filled part. Keys that carry gradients are concatenated
    instead: writing them in place would modify tensors the autograd graph still needs.
    """

    def __init__(self, reserve: int = 0):
        self.key_buffer: Tensor | None = None  # (b, h, capacity, d)
        self.value_buffer: Tensor | None = None
        self.length = 0
        self.reserve = reserve  # positions the first buffers hold (a hint; they still grow)

    # narrow() rather than [..., a:b, :]: one dispatch, no index parsing (a decoding step
    # reads and writes every block's slot)
    @property
    def keys(self) -> Tensor | None:
        return None if self.key_buffer is None else self.key_buffer.narrow(-2, 0, self.length)

    @property
    def values(self) -> Tensor | None:
        return None if self.value_buffer is None else self.value_buffer.narrow(-2, 0, self.length)

    def pending(self, inputs: Tensor) -> Tensor:
        return inputs

    def extend(self, keys: Tensor, values: Tensor) -> KeysValues:
        """keys / values (b, h, n, d) of the new positions -> all of them (b, h, j + n, d)."""
        if keys.requires_grad or values.requires_grad:
            if self.key_buffer is not None:
                keys = torch.cat((self.keys, keys), dim=-2)  # (b, h, j + n, d)
                values = torch.cat((self.values, values), dim=-2)
            self.key_buffer, self.value_buffer, self.length = keys, values, keys.shape[-2]
            return keys, values
        end = self.length + keys.shape[-2]
        if self.key_buffer is None or end > self.key_buffer.shape[-2]:
            self.key_buffer = self._grown(self.keys, keys, end)
            self.value_buffer = self._grown(self.values, values, end)
        self.key_buffer.narrow(-2, self.length, keys.shape[-2]).copy_(keys)
        self.value_buffer.narrow(-2, self.length, values.shape[-2]).copy_(values)
        self.length = end
        return self.keys, self.values

    def _grown(self, filled: Tensor | None, new: Tensor, needed: int) -> Tensor:
        """A buffer (b, h, capacity, d) with room for ``needed`` positions (at least twice the
        filled ones), holding the filled ones."""
        capacity = max(needed, 2 * self.length, self.reserve)
        buffer = new.new_empty(*new.shape[:-2], capacity, new.shape[-1])
        if filled is not None:
            buffer[..., : self.length, :] = filled
        return buffer

    def reorder(self, indices: Tensor) -> None:
        if self.key_buffer is not None:
            self.key_buffer = self.key_buffer[indices]
            self.value_buffer = self.value_buffer[indices]

    def keep_last(self, num_positions: int) -> None:
        if self.length > num_positions:
            self.key_buffer = self.keys[..., -num_positions:, :]
            self.value_buffer = self.values[..., -num_positions:, :]
            self.length = num_positions


class DynamicKVCache:
    """A KV cache that grows with every forward.

    ``offset`` is the position of the next token (a Python int). After :meth:`keep_last` (a
    sliding window) fewer keys are stored than ``offset``; stored keys always cover the positions
    right before ``offset``, so relative positions (rotary, T5, ALiBi) stay exact.
    """

    def __init__(self, reserve: int = 0):
        if reserve < 0:
            raise ValueError(f"DynamicKVCache needs reserve >= 0, got {reserve}")
        # positions each slot's first buffers hold: a known generation length is written
        # without regrowing (and copying) the buffers along the way
        self.reserve = reserve
        self.slots: dict[int, ContextSlot | DynamicSlot] = {}
        self.offset = 0
        self.num_stored = 0
        # key padding, True = visible key, written in place into a buffer that grows like the
        # slots' (a left-padded batch would otherwise copy it whole at every step); None while
        # every stored key is visible
        self._padding_buffer: Tensor | None = None  # (b, capacity)
        self._padding_length = 0
        # positions before the sequence proper (memory tokens, prepended embeddings), set by
        # the wrapper on the first forward; absolute positions start after them
        self.prefix_length = 0

    @property
    def is_empty(self) -> bool:
        return self.offset == 0

    def slot(self, index: int, context: bool = False) -> ContextSlot | DynamicSlot:
        if index not in self.slots:
            self.slots[index] = ContextSlot() if context else DynamicSlot(self.reserve)
        return self.slots[index]

    def position_span(self, num_new: int) -> dict:
        """Where this forward's queries and keys sit (for the position provider): queries from
        ``offset``, keys ending with the last query (``key_start`` None); this forward projects
        the keys of its ``num_new`` positions only."""
        return {
            "offset": self.offset,
            "num_keys": self.num_stored + num_new,
            "key_start": None,
            "num_new_keys": num_new,
        }

    @property
    def key_padding(self) -> Tensor | None:
        """(b, j) True = visible key, for the keys stored and those of the current forward
        (after :meth:`visible_keys`); None while every key is visible."""
        if self._padding_buffer is None:
            return None
        return self._padding_buffer.narrow(1, 0, self._padding_length)

    def visible_keys(self, x: Tensor, mask: Tensor | None) -> Tensor | None:
        """Record the key-padding mask (b, n) of the new positions; return the key mask
        (b, 1, 1, stored + n) of this forward, or None when every key is visible (causality is
        added by the attention, bottom-right aligned)."""
        batch, num_new = x.shape[:2]
        if mask is None and self._padding_buffer is None:
            return None
        end = self.num_stored + num_new
        if self._padding_buffer is None or end > self._padding_buffer.shape[1]:
            capacity = max(end, 2 * self.num_stored, self.reserve)
            grown = torch.ones(batch, capacity, dtype=torch.bool, device=x.device)
            if self._padding_buffer is not None:  # (earlier keys were all visible otherwise)
                grown[:, : self.num_stored] = self._padding_buffer[:, : self.num_stored]
            self._padding_buffer = grown
        new = self._padding_buffer.narrow(1, self.num_stored, num_new)
        if mask is None:
            new.fill_(True)
        else:
            new.copy_(mask)
        self._padding_length = end
        return self._padding_buffer.narrow(1, 0, end)[:, None, None, :]

    def advance(self, num_new: int) -> None:
        self.offset += num_new
        self.num_stored += num_new

    def reorder(self, indices: Tensor) -> None:
        """Select / repeat batch rows (beam search): row r becomes old row ``indices[r]``."""
        for slot in self.slots.values():
            slot.reorder(indices)
        if self._padding_buffer is not None:
            self._padding_buffer = self._padding_buffer[indices]

    def keep_last(self, num_positions: int) -> None:
        """Slide the window: keep only the keys of the last ``num_positions`` positions."""
        if num_positions < 1:
            raise ValueError(f"keep_last needs num_positions >= 1, got {num_positions}")
        if self.prefix_length > 0:
            raise ValueError(
                "cannot slide a cache whose sequence starts with memory tokens or prepended "
                f"embeddings (prefix_length={self.prefix_length})"
            )
        for slot in self.slots.values():
            if isinstance(slot, DynamicSlot):
                slot.keep_last(num_positions)
        kept = min(self.num_stored, num_positions)
        if self._padding_buffer is not None:
            self._padding_buffer = self._padding_buffer[:, self.num_stored - kept : self.num_stored]
            self._padding_length = kept
        self.num_stored = kept


class StaticSlot:
    """Self-attention keys / values of one block in a preallocated (b, h, capacity, d) buffer,
    written at the cache's write positions."""

    def __init__(self, cache: StaticKVCache):
        self.cache = cache
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    def pending(self, inputs: Tensor) -> Tensor:
        return inputs

    def extend(self, keys: Tensor, values: Tensor) -> KeysValues:
        """keys / values (b, h, n, d) of the new positions -> the buffers' written positions
        (b, h, j, d), :meth:`StaticKVCache.readable_length` of them."""
        if self.keys is None:  # allocated lazily: batch, heads and dtype follow the model
            self.keys = self._buffer_like(keys)
            self.values = self._buffer_like(values)
        positions = self.cache.write_positions(keys.shape[-2])
        index_copy_(self.keys, 2, positions, keys)
        index_copy_(self.values, 2, positions, values)
        readable = self.cache.readable_length(keys.shape[-2])
        return self.keys[:, :, :readable], self.values[:, :, :readable]

    def reorder(self, indices: Tensor) -> None:
        if self.keys is not None:
            self.keys, self.values = self.keys[indices], self.values[indices]

    def _buffer_like(self, new: Tensor) -> Tensor:
        """(b, h, n, d) -> zeros (b, h, capacity, d)."""
        batch, heads, _, dim = new.shape
        return new.new_zeros(batch, heads, self.cache.capacity, dim)


class StaticKVCache:
    """A KV cache preallocated for ``capacity`` positions (memory tokens included).

    ``offset`` is a 0-d int64 tensor: the write position, advanced in place. By default every
    forward reads all ``capacity`` positions (unwritten ones masked): static shapes, so
    ``torch.compile`` compiles a decode step once. ``read_written_only=True`` also keeps
    ``written``, the positions written so far (a view of ``slot_positions`` whose length the host
    knows without reading the device), and a forward reads only those slots and its own: less
    memory traffic, but a compiled step must take that length as a dynamic size, as
    ``generate(compile=True)`` does (:mod:`.compiled`). :meth:`read_all` switches back.
    """

    def __init__(self, capacity: int, read_written_only: bool = False):
        if capacity < 1:
            raise ValueError(f"StaticKVCache needs capacity >= 1, got {capacity}")
        self.capacity = capacity
        self.slots: dict[int, ContextSlot | StaticSlot] = {}
        self.offset = torch.zeros((), dtype=torch.long)
        self.slot_positions = torch.arange(capacity)
        self.written: Tensor | None = self.slot_positions[:0] if read_written_only else None
        self.key_padding_buffer: Tensor | None = None  # (b, capacity), False until written
        self._readable = capacity  # readable_length of the current forward (set by visible_keys)
        self.prefix_length = 0
        self.is_empty = True  # a Python flag: only flips on the first (eager) forward

    def slot(self, index: int, context: bool = False) -> ContextSlot | StaticSlot:
        if index not in self.slots:
            self.slots[index] = ContextSlot() if context else StaticSlot(self)
        return self.slots[index]

    def readable_length(self, num_new: int) -> int:
        """Key positions a forward of ``num_new`` new positions reads: the slots written before
        it and its own (slot j holds position j), or the whole buffer."""
        return self.capacity if self.written is None else self.written.shape[0] + num_new

    def read_all(self) -> None:
        """Read every slot from now on (those not written yet masked): static shapes."""
        self.written = None

    def position_span(self, num_new: int) -> dict:
        """Where this forward's queries and keys sit (for the position provider): queries from
        the write position; the keys are the buffer's readable slots, slot j holding position j;
        this forward projects the keys of its ``num_new`` positions only."""
        return {
            "offset": self.offset,
            "num_keys": self.readable_length(num_new),
            "key_start": 0,
            "num_new_keys": num_new,
        }

    def write_positions(self, num_new: int) -> Tensor:
        return self.offset + torch.arange(num_new, device=self.offset.device)

    @property
    def key_padding(self) -> Tensor | None:
        """(b, j) True = a written, unpadded key, over the readable slots of the current forward
        (after :meth:`visible_keys`)."""
        if self.key_padding_buffer is None:
            return None
        return self.key_padding_buffer[:, : self._readable]

    def visible_keys(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """Record the key-padding mask (b, n) of the new positions; return the key mask
        (b, 1, n, j) over the readable slots: written, not padded, and causal by position."""
        batch, num_new = x.shape[:2]
        if self.slot_positions.device != x.device:
            self.slot_positions = self.slot_positions.to(x.device)
            if self.written is not None:
                self.written = self.slot_positions[: self.written.shape[0]]
        if self.key_padding_buffer is None:
            self.offset = self.offset.to(x.device)
            self.key_padding_buffer = torch.zeros(
                batch, self.capacity, dtype=torch.bool, device=x.device
            )
        if mask is None:
            mask = torch.ones(batch, num_new, dtype=torch.bool, device=x.device)
        query_positions = self.write_positions(num_new)
        index_copy_(self.key_padding_buffer, 1, query_positions, mask)
        self._readable = self.readable_length(num_new)
        key_positions = self.slot_positions[: self._readable]
        causal = key_positions[None, :] <= query_positions[:, None]  # (n, j)
        return self.key_padding[:, None, None, :] & causal

    def advance(self, num_new: int) -> None:
        self.offset += num_new  # in place under torch
        if self.written is not None:
            self.written = self.slot_positions[: self.written.shape[0] + num_new]
        if self.is_empty:
            self.is_empty = False

    def reorder(self, indices: Tensor) -> None:
        """Select / repeat batch rows (beam search): row r becomes old row ``indices[r]``."""
        for slot in self.slots.values():
            slot.reorder(indices)
        if self.key_padding_buffer is not None:
            self.key_padding_buffer = self.key_padding_buffer[indices]


def resolve_cache(cache, stack: nn.Module, *, record: bool, prepend_embeds: Tensor | None):
    """The cache a wrapper's forward uses: the one given (or held by the intermediates of an
    earlier forward, as in ``logits, cache = model(x, return_intermediates=True)``), or a fresh
    :class:`DynamicKVCache` when ``record`` asks for one and the stack can be cached."""
    if cache is not None and not isinstance(cache, (DynamicKVCache, StaticKVCache)):
        held = getattr(cache, "cache", None)
        if held is None:
            raise ValueError(
                f"'cache' must be a KV cache or the intermediates of a forward that recorded one "
                f"(a Decoder without features that prevent caching); got {type(cache).__name__} "
                "without a cache"
            )
        cache = held
    if cache is None and record and stack.causal and not stack.kv_cache_blockers:
        cache = DynamicKVCache()
    if cache is not None and prepend_embeds is not None and not cache.is_empty:
        raise ValueError(
            "'prepend_embeds' can only be given on the first forward of a KV cache (they are "
            "already cached)"
        )
    return cache


def sequence_offset(cache, seq_start_pos: Tensor | None) -> int | Tensor:
    """Absolute position of the first new token: what the cache holds after its prefix (memory
    tokens, prepended embeddings), minus each row's start for left-padded prompts ((b, 1))."""
    offset = 0 if cache is None or cache.is_empty else cache.offset - cache.prefix_length
    if seq_start_pos is not None:
        offset = offset - seq_start_pos.reshape(-1, 1)  # (b, 1)
    return offset
