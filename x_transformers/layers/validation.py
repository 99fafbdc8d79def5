"""Checks of the inputs to a layer stack, with errors that print what was expected."""

from __future__ import annotations

import torch
from torch import Tensor


def check_mask(x: Tensor, mask: Tensor | None, name: str) -> None:
    """A key-padding mask must be boolean (b, n) matching the input."""
    if mask is None:
        return
    expected = tuple(x.shape[:2])
    if mask.dtype != torch.bool:
        raise TypeError(f"'{name}' must be a bool tensor (True = keep), got dtype {mask.dtype}")
    if tuple(mask.shape) != expected:
        raise ValueError(
            f"'{name}' must have shape (batch, seq_len) = {expected}, got {tuple(mask.shape)}"
        )


def check_attn_mask(x: Tensor, attn_mask: Tensor | None, heads: int | None = None) -> None:
    """A full attention mask (n, n), (b, n, n) or per head (b, h, n, n), True = may attend."""
    if attn_mask is None:
        return
    b, n = x.shape[:2]
    if attn_mask.dtype != torch.bool:
        raise TypeError(f"'attn_mask' must be a bool tensor, got dtype {attn_mask.dtype}")
    shapes = [(n, n), (b, n, n)] + ([] if heads is None else [(b, heads, n, n)])
    if tuple(attn_mask.shape) not in shapes:
        raise ValueError(
            f"'attn_mask' must have shape {' or '.join(map(str, shapes))}, "
            f"got {tuple(attn_mask.shape)}"
        )


def check_self_attn_kv_mask(x: Tensor, kv_mask: Tensor | None, num_keys: int, cache) -> None:
    """``self_attn_kv_mask`` (b, j): which self-attention keys (memories and x) are visible."""
    if kv_mask is None:
        return
    if cache is not None:
        raise ValueError(
            "'self_attn_kv_mask' cannot be combined with a KV cache ('cache'); use 'mask' (b, n) "
            "for padding, which the cache records"
        )
    if kv_mask.dtype != torch.bool:
        raise TypeError(f"'self_attn_kv_mask' must be a bool tensor, got dtype {kv_mask.dtype}")
    expected = (x.shape[0], num_keys)
    if tuple(kv_mask.shape) != expected:
        raise ValueError(
            f"'self_attn_kv_mask' must have shape (batch, keys) = {expected} (memories and "
            f"sequence), got {tuple(kv_mask.shape)}"
        )


def check_custom_positions(pos: Tensor | None, x: Tensor, mems, cache, seq_start_pos) -> None:
    """``pos`` (n,) or (b, n): integer positions of a plain forward (no KV cache, no memories,
    whose keys sit at positions this forward does not know; no ``seq_start_pos``, which custom
    positions already express)."""
    if pos is None:
        return
    if seq_start_pos is not None:
        raise ValueError(
            "'pos' (custom positions) and 'seq_start_pos' cannot be combined: give each row's "
            "positions in 'pos' directly (e.g. pos = arange(n) - start)"
        )
    for name, value in (("cache", cache), ("mems", mems)):
        if value is not None:
            raise ValueError(
                f"'pos' (custom positions) cannot be combined with '{name}': the positions of "
                "the earlier keys are not known; give the whole sequence with 'pos' instead"
            )
    if not isinstance(pos, Tensor) or pos.is_floating_point() or pos.dtype == torch.bool:
        raise TypeError(f"'pos' must be an integer tensor, got {pos!r}")
    b, n = x.shape[:2]
    if tuple(pos.shape) not in ((n,), (b, n)):
        raise ValueError(f"'pos' must have shape ({n},) or ({b}, {n}), got {tuple(pos.shape)}")


def check_context(stack, x: Tensor, context: Tensor | None, context_mask: Tensor | None) -> None:
    name = type(stack).__name__
    if context is None:
        if stack.has_cross_attention:
            raise ValueError(f"{name} has cross-attention blocks and needs 'context' (b, j, dim)")
        if context_mask is not None:
            raise ValueError(f"'context_mask' was given without 'context' to {name}")
        return
    if not stack.has_cross_attention:
        raise ValueError(
            f"{name} got 'context' but has no cross-attention; build it with cross_attend=True"
        )
    if context.ndim != 3 or context.shape[-1] != stack.dim_context:
        raise ValueError(
            f"'context' must have shape (batch, context_len, {stack.dim_context}), "
            f"got {tuple(context.shape)}"
        )
    if context.shape[0] != x.shape[0]:
        raise ValueError(
            f"'context' batch size {context.shape[0]} does not match the input's {x.shape[0]}"
        )
    check_mask(context, context_mask, "context_mask")
