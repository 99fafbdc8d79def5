"""Sequence pooling of the sequence wrappers: one vector per row instead of one per position.

- ``use_cls_token``: a learned class token in front of the sequence (BERT, 1810.04805; ViT,
  2010.11929); its final hidden state is the row's vector;
- ``average_pool_embed``: the mean of the final hidden states of the row's real positions
  (``mask`` True; every position without a mask).

With either, the wrapper's output is pooled: ``return_embeddings=True`` gives (b, d), the head
gives (b, logits_dim) (a classifier with ``logits_dim=num_classes``). ::

    h (b, n, d) ── class token in front ── layer stack ── h[:, 0]            ──> (b, d) ── head
                                                      └── masked mean of h ──┘ (average)

The class token comes after the absolute positions (it has none) and before any prepended
embeddings, so it sits at index 0 of the stack's input; memory tokens go in front of it and are
stripped again. It sees every position, so it needs a non-causal stack; a pooled output has no
per-position continuation, so neither works with a KV cache.

Shape letters: b batch, n sequence, p prefix (class token, prepended embeddings), d width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..options import WrapperOptions


class SequencePooling(nn.Module):
    """The class token and the pooling of ``use_cls_token`` / ``average_pool_embed``."""

    def __init__(self, dim: int, use_cls_token: bool):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(dim) * 0.02) if use_cls_token else None
        self.keyword = "use_cls_token" if use_cls_token else "average_pool_embed"

    def prepend(self, h: Tensor, mask: Tensor | None, cache) -> tuple[Tensor, Tensor | None]:
        """(b, p + n, d) -> (b, 1 + p + n, d) with the class token first (always visible)."""
        if cache is not None and not cache.is_empty:
            raise ValueError(f"'{self.keyword}' pools the whole sequence: no KV cache ('cache=')")
        if self.cls_token is None:
            return h, mask
        token = self.cls_token.to(h.dtype).expand(h.shape[0], 1, -1)  # (b, 1, d)
        if mask is not None:
            mask = torch.cat((mask.new_ones(mask.shape[0], 1), mask), dim=1)
        return torch.cat((token, h), dim=1), mask

    def pool(self, h: Tensor, mask: Tensor | None, num_positions: int) -> Tensor:
        """Final hidden states (b, 1 + p + n, d) -> (b, d); ``mask`` (b, ..., n) the stack's
        key-padding mask, whose last ``num_positions`` entries are the sequence's."""
        if self.cls_token is not None:
            return h[:, 0]
        h = h[:, -num_positions:]  # (b, n, d)
        if mask is None:
            return h.mean(dim=1)
        weights = mask[:, -num_positions:, None].to(h.dtype)  # (b, n, 1)
        return (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def build_pooling(dim: int, options: WrapperOptions, attn_layers) -> SequencePooling | None:
    """``SequencePooling`` when ``use_cls_token`` or ``average_pool_embed``, else None."""
    if not (options.use_cls_token or options.average_pool_embed):
        return None
    if options.use_cls_token and attn_layers.causal:
        raise ValueError(
            "'use_cls_token' needs a non-causal stack (Encoder): the class token is first, and "
            "a causal one sees only itself"
        )
    return SequencePooling(dim, options.use_cls_token)
