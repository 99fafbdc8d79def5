"""The prefix-LM mask of :class:`~x_transformers.PrefixDecoder`: causal, except inside a prefix
whose positions all see each other (UniLM, 1905.03197; the "prefix LM" of T5, 1910.10683)::

    keys ->     p p p s s s          p: prefix (length 3), s: the rest
    query p     1 1 1 . . .
    query p     1 1 1 . . .
    query p     1 1 1 . . .
    query s     1 1 1 1 . .
    query s     1 1 1 1 1 .
    query s     1 1 1 1 1 1

Query at position q sees key at position k when ``k <= q`` or ``k < prefix_attn_len``. The
positions are those of the stack's :class:`~x_transformers.positional.PositionSpan` (a KV cache's
offset, a left-padded row's start), never the custom ``pos=`` values: causality follows the order
of the sequence. With a KV cache the whole prefix is prefilled in one forward (its queries must
see each other); later forwards are causal and need no prefix.

Shape letters: b batch, i queries, j keys.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..positional.span import PositionSpan


def check_prefix_attn_len(prefix_attn_len, x: Tensor, cache, mems) -> int | Tensor | None:
    """``prefix_attn_len`` as an int or a (b,) integer tensor (None or 0: no prefix); checked
    against the sequence length, the KV cache (prefix prefilled in one forward) and memories.
    A later forward of a KV cache needs no prefix (every new query is after it): the values
    given are only checked to lie within the cached positions, without a host sync (an
    asynchronous assertion for a static cache on an accelerator; nothing while compiling)."""
    if prefix_attn_len is None:
        return None
    batch, length = x.shape[:2]
    _check_kind(prefix_attn_len, batch)
    if cache is not None and not cache.is_empty:
        _check_prefix_is_cached(prefix_attn_len, cache.offset)
        return None
    values = torch.as_tensor(prefix_attn_len)
    low, high = int(values.min()), int(values.max())
    if high == 0:
        return None
    if mems is not None:
        raise ValueError(
            "'prefix_attn_len' and 'mems' (Transformer-XL memories) cannot be combined: the "
            "prefix would have to reach back into the remembered segment"
        )
    if low < 0 or high > length:
        raise ValueError(
            f"'prefix_attn_len' must lie in [0, {length}] (the sequence length), "
            f"got values in [{low}, {high}]"
        )
    return prefix_attn_len


def _check_kind(prefix_attn_len, batch: int) -> None:
    if isinstance(prefix_attn_len, Tensor):
        if prefix_attn_len.is_floating_point() or tuple(prefix_attn_len.shape) != (batch,):
            raise ValueError(
                f"'prefix_attn_len' must be an int or an integer tensor of shape (batch={batch},),"
                f" got {prefix_attn_len.dtype} of shape {tuple(prefix_attn_len.shape)}"
            )
    elif not isinstance(prefix_attn_len, int) or isinstance(prefix_attn_len, bool):
        raise TypeError(
            f"'prefix_attn_len' must be an int or a (batch,) tensor, got {prefix_attn_len!r}"
        )


def _check_prefix_is_cached(prefix_attn_len, offset: int | Tensor) -> None:
    """A later forward of a KV cache: the prefix must lie within the cached positions (it was
    prefilled in one forward)."""
    if torch.compiler.is_compiling():
        return
    message = (
        "'prefix_attn_len' reaches past the cached positions; with a KV cache the whole prefix "
        "is prefilled in the first forward"
    )
    values = torch.as_tensor(prefix_attn_len)
    if isinstance(offset, Tensor) and offset.device.type != "cpu":
        values = values.to(offset.device)
        torch._assert_async(((values >= 0) & (values <= offset)).all(), message)
        return
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > int(offset):
        raise ValueError(f"{message}: got values in [{low}, {high}], {int(offset)} cached")


def prefix_causal_mask(span: PositionSpan, prefix_attn_len, device: torch.device) -> Tensor:
    """(b|1, 1, i, j) True where a query may attend: keys at or before its position, and every
    key of the prefix (``prefix_attn_len``: None, an int, or (b,) per-row lengths)."""
    query = span.query_positions(device)  # (i,) or (b, i)
    key = span.key_positions(device)  # (j,) or (b, j)
    visible = key[..., None, :] <= query[..., :, None]  # (i, j) or (b, i, j)
    if prefix_attn_len is not None:
        if isinstance(prefix_attn_len, Tensor):
            in_prefix = key < prefix_attn_len.to(device)[:, None]  # (b, j)
        else:
            in_prefix = key < prefix_attn_len  # (j,) or (b, j)
        visible = visible | in_prefix[..., None, :]
    if visible.ndim == 2:
        return visible[None, None]
    return visible[:, None]
