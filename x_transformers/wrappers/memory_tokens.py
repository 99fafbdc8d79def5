"""Memory tokens: learned vectors put before the sequence, passed through every layer with it and
removed from the output ("Memory Transformer", 2006.11527; the same idea as the "registers" of
"Vision Transformers Need Registers", 2309.16588).

They act as a global scratchpad. In a ``Decoder`` they come first, so every position may attend
to them while they themselves see no input token: causality is kept without a special mask.
They carry no absolute position (they are added after the embedding) and are always visible in
the key-padding mask.

:func:`run_layers` is the wrappers' memory stage around the layer stack::

    h ── memory tokens in front ── layer stack (XL memories, KV cache) ── strip ──> h
                                        └── inputs of the self-attention blocks ──> next memories

With a KV cache the memory tokens are put in front on the first forward only (they are cached).
In a left-padded batch (``seq_start_pos``) they are placed per row, right before the row's first
real position (:class:`PrefixPlacement`), so every row sees them where it would alone.

Shape letters: b batch, m memory tokens, n sequence, d width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..generation.recurrence import next_memories, shift_memories


class MemoryTokens(nn.Module):
    """``num_memory_tokens`` learned vectors of width ``dim`` ("Memory Transformer",
    2006.11527)."""

    def __init__(self, num_memory_tokens: int, dim: int):
        super().__init__()
        if num_memory_tokens < 1:
            raise ValueError(f"'num_memory_tokens' must be >= 1, got {num_memory_tokens}")
        self.num_memory_tokens = num_memory_tokens
        self.tokens = nn.Parameter(torch.randn(num_memory_tokens, dim) * 0.02)

    def prepend(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(b, n, d) -> (b, m + n, d); the mask (b, n) -> (b, m + n) with the memory visible."""
        memory = self.tokens.to(x.dtype).expand(x.shape[0], -1, -1)  # (b, m, d)
        x = torch.cat((memory, x), dim=1)
        if mask is not None:
            visible = mask.new_ones(mask.shape[0], self.num_memory_tokens)
            mask = torch.cat((visible, mask), dim=1)
        return x, mask

    def strip(self, x: Tensor) -> Tensor:
        """(b, m + n, ...) -> (b, n, ...)."""
        return x[:, self.num_memory_tokens :]


def build_memory_tokens(num_memory_tokens: int, dim: int) -> MemoryTokens | None:
    return MemoryTokens(num_memory_tokens, dim) if num_memory_tokens > 0 else None


def run_layers(wrapper: nn.Module, h: Tensor, mask: Tensor | None, num_positions: int, **kwargs):
    """Run ``wrapper.attn_layers`` on the stem's output h (b, p + n, d), where the last
    ``num_positions`` are the sequence proper; returns (h (b, p + n, d), intermediates).

    Keywords: ``mems`` and ``return_mems`` (Transformer-XL, with the wrapper's ``max_mem_len``
    and ``shift_mem_down``), ``cache`` (KV cache), ``seq_start_pos`` (b,) (each row's first
    real position in a left-padded batch) and the stack's own keywords.
    """
    mems, cache = kwargs.pop("mems", None), kwargs.get("cache")
    return_mems = kwargs.pop("return_mems", False)
    memory_tokens = wrapper.memory_tokens
    first_forward = cache is None or cache.is_empty
    seq_start_pos = kwargs.pop("seq_start_pos", None)  # (b,), checked by check_row_starts
    sequence_mask = mask  # (b, p + n) the positions the memories will remember
    if memory_tokens is not None and first_forward:
        h, mask = memory_tokens.prepend(h, mask)
    prefix_length = h.shape[1] - num_positions  # memory tokens, prepended embeddings
    if cache is not None and first_forward:
        cache.prefix_length = prefix_length
    placement = None
    if seq_start_pos is not None and first_forward and prefix_length > 0:
        placement = PrefixPlacement(prefix_length, seq_start_pos, h.shape[1])
        h, mask = placement.place(h), None if mask is None else placement.place(mask)
    shift_by_prefix(kwargs, prefix_length if cache is None else cache.prefix_length, first_forward)
    layer_mems = shift_memories(mems, wrapper.shift_mem_down)
    h, intermediates = wrapper.attn_layers(
        h, mask=mask, mems=layer_mems, return_hiddens=True, seq_start_pos=seq_start_pos, **kwargs
    )
    restore = (lambda t: t) if placement is None else placement.restore
    strip = memory_tokens.strip if memory_tokens is not None and first_forward else None
    h = restore(h) if strip is None else strip(restore(h))
    if return_mems:
        hiddens = [restore(hidden) for hidden in intermediates.self_attention_inputs]
        hiddens = hiddens if strip is None else [strip(hidden) for hidden in hiddens]
        intermediates.mems = next_memories(mems, hiddens, wrapper.max_mem_len, sequence_mask)
    return h, intermediates


def shift_by_prefix(kwargs: dict, prefix_length: int, first_forward: bool) -> None:
    """The stack counts the prefix's positions (memory tokens, prepended embeddings) too: a
    ``prefix_attn_len`` of the sequence covers them as well, and custom positions ``pos`` of
    the sequence come after theirs (0 .. p - 1, as without ``pos``)."""
    if prefix_length == 0:
        return
    if kwargs.get("prefix_attn_len") is not None:
        kwargs["prefix_attn_len"] = kwargs["prefix_attn_len"] + prefix_length
    pos = kwargs.get("pos")
    if pos is not None and first_forward:
        front = torch.arange(prefix_length, device=pos.device).expand(*pos.shape[:-1], -1)
        kwargs["pos"] = torch.cat((front, pos + prefix_length), dim=-1)


def check_row_starts(seq_start_pos: Tensor | None, x: Tensor, cache) -> Tensor | None:
    """``seq_start_pos`` as a (b,) integer tensor of each row's first real position in x, or
    (a later forward of a KV cache, which keeps the first forward's starts) only >= 0; values
    are checked on the CPU only (no host sync on accelerators)."""
    if seq_start_pos is None:
        return None
    batch = x.shape[0]
    limit = x.shape[1] if cache is None or cache.is_empty else None
    if not isinstance(seq_start_pos, Tensor) or seq_start_pos.is_floating_point():
        raise TypeError(f"'seq_start_pos' must be an integer tensor, got {seq_start_pos!r}")
    starts = seq_start_pos.reshape(-1)
    if starts.shape[0] != batch:
        raise ValueError(
            f"'seq_start_pos' must hold one start per row (batch={batch}), "
            f"got shape {tuple(seq_start_pos.shape)}"
        )
    if starts.device.type == "cpu" and not torch.compiler.is_compiling():
        low, high = int(starts.min()), int(starts.max())
        if low < 0 or (limit is not None and high >= limit):
            bound = "" if limit is None else f", below the sequence length {limit}"
            raise ValueError(
                f"'seq_start_pos' (each row's first real position) must be >= 0{bound}; "
                f"got values in [{low}, {high}]"
            )
    return starts


class PrefixPlacement:
    """Puts the prefix of a left-padded row (memory tokens, prepended embeddings) right before
    the row's first real position, as it would sit with the row alone::

        given   [prefix (p) | padding (s_b) | real]
        placed  [padding (s_b) | prefix (p) | real]

    so every row's prefix and sequence are contiguous and start at index ``s_b``: positions
    shifted down by ``s_b`` (the layer stack's ``seq_start_pos``) are those of the row alone, and
    token shift reads the prefix, not padding, before the first real position. Used on the first
    forward only (a KV cache keeps the placed layout).
    """

    def __init__(self, prefix_length: int, seq_start_pos: Tensor, length: int):
        starts = seq_start_pos.reshape(-1, 1)  # (b, 1)
        index = torch.arange(length, device=starts.device)[None, :]  # (1, L)
        # placed[u] = given[source[u]]: padding first, then the prefix, then the rest
        self.source = torch.where(
            index < starts,
            index + prefix_length,
            torch.where(index < starts + prefix_length, index - starts, index),
        )  # (b, L)
        # given[t] = placed[target[t]]
        self.target = torch.where(
            index < prefix_length,
            index + starts,
            torch.where(index < prefix_length + starts, index - prefix_length, index),
        )  # (b, L)

    def place(self, x: Tensor) -> Tensor:
        """(b, L, ...) in the given layout -> the placed layout."""
        return _gather_rows(x, self.source)

    def restore(self, x: Tensor) -> Tensor:
        """(b, L, ...) in the placed layout -> the given layout."""
        return _gather_rows(x, self.target)


def _gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """out[b, t] = x[b, index[b, t]] for x (b, L) or (b, L, d)."""
    if x.ndim == 2:
        return x.gather(1, index)
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))
