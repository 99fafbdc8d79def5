"""Boolean attention masks (True = may attend), built once per forward by the layer stack.

Shape letters: b batch, h heads, i queries, j keys.
"""

from __future__ import annotations

import torch
from torch import Tensor


def key_padding_to_attention_mask(mask: Tensor | None) -> Tensor | None:
    """(b, j) key-padding mask -> (b, 1, 1, j), broadcastable over heads and queries."""
    if mask is None:
        return None
    return mask[:, None, None, :]


def full_to_attention_mask(attn_mask: Tensor | None) -> Tensor | None:
    """(i, j) or (b, i, j) mask -> broadcastable (b|1, 1, i, j)."""
    if attn_mask is None:
        return None
    if attn_mask.ndim == 2:
        return attn_mask[None, None]
    return attn_mask[:, None]


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of the masks that are present (None means no restriction)."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    combined = present[0]
    for m in present[1:]:
        combined = combined & m
    return combined


def causal_mask(num_queries: int, num_keys: int, device: torch.device) -> Tensor:
    """(i, j) mask where query i (the last ``num_queries`` of ``num_keys`` positions) sees keys up
    to and including its own position: bottom-right aligned, so it holds with a cache or memory."""
    offset = num_keys - num_queries
    query_pos = torch.arange(num_queries, device=device)[:, None] + offset
    key_pos = torch.arange(num_keys, device=device)[None, :]
    return key_pos <= query_pos


def prepend_keys(tensor: Tensor | None, num: int, value: float | bool) -> Tensor | None:
    """Make room for ``num`` extra keys in front of a mask or bias (..., j) -> (..., num + j),
    filled with ``value`` (True for a mask: always visible; 0 for a bias)."""
    if tensor is None:
        return None
    # torch.full + cat rather than F.pad: Paddle has no bool kernel for pad
    front = torch.full((*tensor.shape[:-1], num), value, dtype=tensor.dtype, device=tensor.device)
    return torch.cat((front, tensor), dim=-1)
