"""Where the queries and keys of one attention call sit: two contiguous ranges of positions.

Every positional scheme is computed from a :class:`PositionSpan`, never from tensor shapes alone,
so a KV cache or Transformer-XL memory shifts positions by giving an explicit offset:

- queries occupy ``query_start .. query_start + num_queries - 1``;
- keys occupy ``key_start .. key_start + num_keys - 1``.

By default the keys end with the last query (the queries are the newest positions), which is the
layout of a plain forward (offset 0), of a growing KV cache (offset = cached length, keys =
cached + new) and of XL memories (offset = memory length).

The span also says which keys the attention *projects* in this call (``new_key_start``,
``num_new_keys``): all keys of the span in a plain forward or with XL memories, only the newest
``num_new_keys`` (at the last query positions) with a KV cache, whose older keys were projected,
and positioned, by earlier calls. Rotary and position-infused attention place the keys they see
from these fields, never from tensor lengths. Starts may be Python ints or 0-d
integer tensors (a static cache's write position), so nothing here syncs with the host.

A batch of prompts of different lengths is left-padded; ``row_offset`` (b,) then says, per row,
how far every position of that row is shifted down (the row's first real position is 0, its
padding negative), so a row sees the positions it would see alone. The offset is the same for
the queries and the keys of a row, so distances (relative biases: T5, ALiBi, dynamic) do not
change; only the schemes that read positions themselves (rotary and xPos, whose keys meet
unrotated memory key/values; position-infused attention) give one set per row.

Custom positions (the forward's ``pos=``) replace the ranges: ``positions`` (n,) or (b, n) are
the positions of the queries, which are also the keys (a plain forward: no cache, no memories).
Rotary, xPos and position-infused attention read them, and the relative biases (T5, ALiBi,
dynamic) are computed from their differences, (i, j) or (b, i, j).

Shape letters: b batch, i queries, j keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PositionSpan:
    """Contiguous query and key positions of one attention call."""

    num_queries: int
    num_keys: int
    query_start: int | Tensor = 0
    key_start: int | Tensor = 0
    # the keys projected in this call: None means every key of the span (from key_start)
    num_new_keys: int | None = None
    # (b,) subtracted from every position of row b (left-padded rows); None: the same for all
    row_offset: Tensor | None = None
    # (i,) or (b, i) explicit positions of the queries, which are also the keys (``pos=``)
    positions: Tensor | None = None

    @property
    def new_key_count(self) -> int:
        """How many keys this call projects (and rotates / infuses)."""
        return self.num_keys if self.num_new_keys is None else self.num_new_keys

    @property
    def new_key_start(self) -> int | Tensor:
        """Position of the first key projected in this call: the key start, or (fewer new keys
        than keys: a KV cache) the query position of the first new key."""
        if self.num_new_keys is None:
            return self.key_start
        return self.query_start + self.num_queries - self.num_new_keys

    @classmethod
    def for_lengths(
        cls,
        num_queries: int,
        num_keys: int | None = None,
        offset: int | Tensor = 0,
        key_start: int | Tensor | None = None,
        num_new_keys: int | None = None,
        row_offset: Tensor | None = None,
        positions: Tensor | None = None,
    ) -> PositionSpan:
        """Queries at ``offset + arange(num_queries)``; ``num_keys`` defaults to every position
        up to the last query (``offset + num_queries``); keys end with the last query unless
        ``key_start`` says otherwise; ``num_new_keys`` (at most ``num_queries``) is how many of
        the newest positions this call projects keys for (None: all keys of the span);
        ``row_offset`` (b,) shifts every position of each row down (left-padded rows);
        ``positions`` (i,) or (b, i) are explicit positions of the queries and keys (then
        ``num_keys`` must equal ``num_queries`` and every key is new)."""
        if isinstance(num_queries, bool) or not isinstance(num_queries, int) or num_queries < 1:
            raise ValueError(f"num_queries must be a positive int, got {num_queries!r}")
        if num_keys is None:
            if isinstance(offset, Tensor):
                raise ValueError("num_keys must be given when the offset is a tensor")
            num_keys = offset + num_queries
        if isinstance(num_keys, bool) or not isinstance(num_keys, int) or num_keys < 1:
            raise ValueError(f"num_keys must be a positive int, got {num_keys!r}")
        if key_start is None:
            key_start = offset + num_queries - num_keys
        if num_new_keys is not None and not 0 <= num_new_keys <= num_queries:
            raise ValueError(
                f"num_new_keys must lie in [0, num_queries={num_queries}], got {num_new_keys}"
            )
        if row_offset is not None and (not isinstance(row_offset, Tensor) or row_offset.ndim != 1):
            shape = tuple(row_offset.shape) if isinstance(row_offset, Tensor) else row_offset
            raise ValueError(f"row_offset must be a (batch,) tensor, got {shape!r}")
        if positions is not None:
            _check_explicit_positions(positions, num_queries, num_keys, num_new_keys)
        return cls(num_queries, num_keys, offset, key_start, num_new_keys, row_offset, positions)

    @property
    def delta(self) -> int | Tensor:
        """Position of the first query minus position of the first key."""
        return self.query_start - self.key_start

    def query_positions(self, device: torch.device, dtype: torch.dtype = torch.long) -> Tensor:
        """(i,) positions of the queries; (b, i) with a row offset or per-row positions."""
        if self.positions is not None:
            return self._per_row(self.positions.to(device), dtype)
        positions = torch.arange(self.num_queries, device=device) + self.query_start
        return self._per_row(positions, dtype)

    def key_positions(self, device: torch.device, dtype: torch.dtype = torch.long) -> Tensor:
        """(j,) positions of the keys; (b, j) with a row offset or per-row positions."""
        if self.positions is not None:
            return self._per_row(self.positions.to(device), dtype)
        positions = torch.arange(self.num_keys, device=device) + self.key_start
        return self._per_row(positions, dtype)

    def new_key_positions(self, device: torch.device, dtype: torch.dtype = torch.long) -> Tensor:
        """(n,) positions of the keys projected in this call; (b, n) with a row offset."""
        if self.positions is not None:
            return self._per_row(self.positions.to(device), dtype)
        positions = torch.arange(self.new_key_count, device=device) + self.new_key_start
        return self._per_row(positions, dtype)

    def _per_row(self, positions: Tensor, dtype: torch.dtype) -> Tensor:
        """(n,) or (b, n) positions -> the same, or (b, n) shifted down by each row's offset."""
        if self.row_offset is not None:
            positions = positions - self.row_offset.to(positions.device)[:, None]
        return positions.to(dtype)

    def distances(self, device: torch.device) -> Tensor:
        """(i, j) integer ``query_position - key_position``: positive when the key is earlier;
        (b, i, j) with per-row explicit positions."""
        if self.positions is not None:
            positions = self.positions.to(device)
            return positions[..., :, None] - positions[..., None, :]
        query = torch.arange(self.num_queries, device=device)
        key = torch.arange(self.num_keys, device=device)
        return query[:, None] - key[None, :] + self.delta

    def distinct_distances(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The ``i + j - 1`` distinct distances (ascending) and the (i, j) index of each entry of
        :meth:`distances` into them; lets a scheme evaluate something per distance, not per
        (query, key) pair. With explicit positions: the distinct values present and an index of
        the shape of :meth:`distances`."""
        if self.positions is not None:
            return torch.unique(self.distances(device), return_inverse=True)
        values = torch.arange(-(self.num_keys - 1), self.num_queries, device=device) + self.delta
        query = torch.arange(self.num_queries, device=device)
        key = torch.arange(self.num_keys, device=device)
        index = query[:, None] - key[None, :] + (self.num_keys - 1)
        return values, index


def _check_explicit_positions(positions, num_queries: int, num_keys: int, num_new_keys) -> None:
    """Explicit positions describe one plain sequence: the queries, which are also the keys."""
    if not isinstance(positions, Tensor) or positions.is_floating_point() or positions.is_complex():
        raise TypeError(f"'pos' must be an integer tensor, got {positions!r}")
    if positions.ndim not in (1, 2) or positions.shape[-1] != num_queries:
        raise ValueError(
            f"'pos' must have shape (seq_len,) or (batch, seq_len) with seq_len={num_queries}, "
            f"got {tuple(positions.shape)}"
        )
    if num_keys != num_queries or num_new_keys is not None:
        raise ValueError(
            f"'pos' gives the positions of one plain sequence ({num_queries} queries), but the "
            f"span has {num_keys} keys (a KV cache or Transformer-XL memories)"
        )
