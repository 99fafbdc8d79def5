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


def check_attn_mask(x: Tensor, attn_mask: Tensor | None) -> None:
    if attn_mask is None:
        return
    b, n = x.shape[:2]
    if attn_mask.dtype != torch.bool:
        raise TypeError(f"'attn_mask' must be a bool tensor, got dtype {attn_mask.dtype}")
    if tuple(attn_mask.shape) not in ((n, n), (b, n, n)):
        raise ValueError(
            f"'attn_mask' must have shape ({n}, {n}) or ({b}, {n}, {n}), "
            f"got {tuple(attn_mask.shape)}"
        )


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
