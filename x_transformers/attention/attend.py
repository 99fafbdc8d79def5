"""The attention kernel: scores -> biases -> mask -> softmax -> dropout -> values.

Two paths compute the same function:
- the fused path, ``F.scaled_dot_product_attention`` (FlashAttention / memory-efficient kernels,
  2205.14135), used whenever no active feature needs the attention matrix itself;
- the explicit path, which materialises scores and weights so that features can transform them
  and so that the weights can be returned.

The choice is made once at construction and exposed as ``Attend.fused`` with
``Attend.fused_reason``.

A query row with no visible key (for example a fully padded sequence) yields zeros on both paths:
such rows are unmasked before the softmax (so it stays finite) and zeroed afterwards.

Shape letters: b batch, h heads, i queries, j keys, d head dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .masks import causal_mask, combine_masks


@dataclass
class AttentionIntermediates:
    """What one attention call can hand back to the stack (None when not computed)."""

    pre_softmax_scores: Tensor | None = None  # (b, h, i, j)
    post_softmax_attn: Tensor | None = None  # (b, h, i, j)


class Attend(nn.Module):
    """Scaled dot-product attention ("Attention Is All You Need", 1706.03762) with a fused and an
    explicit path that agree numerically.

    Args:
        causal: queries may only see keys at or before their own position (bottom-right aligned).
        dropout: dropout on the attention weights (training only).
        scale: multiplier of q.k; defaults to ``dim_head ** -0.5``.
        flash: the user asked for the fused kernel; an error is raised when an active feature
            (listed in ``needs_matrix``) requires the explicit path.
        needs_matrix: names of the active keywords that need the attention matrix.
    """

    def __init__(
        self,
        *,
        causal: bool = False,
        dropout: float = 0.0,
        scale: float | None = None,
        flash: bool = False,
        needs_matrix: tuple[str, ...] = (),
    ):
        super().__init__()
        self.causal = causal
        self.dropout = dropout
        self.scale = scale
        self.fused = not needs_matrix
        self.fused_reason = (
            "no active feature needs the attention matrix"
            if self.fused
            else f"explicit path: {', '.join(needs_matrix)} need(s) the attention matrix"
        )
        if flash and not self.fused:
            raise ValueError(
                f"'attn_flash=True' cannot be combined with {', '.join(map(repr, needs_matrix))}: "
                "they need the attention matrix, which the fused kernel never materialises"
            )

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, AttentionIntermediates]:
        """q (b, h, i, d), k/v (b, h, j, d); mask broadcastable to (b, h, i, j), True = attend;
        bias an additive score bias broadcastable to (b, h, i, j)."""
        num_queries, num_keys = q.shape[-2], k.shape[-2]
        use_builtin_causal = self.causal and mask is None and num_queries == num_keys
        if self.causal and not use_builtin_causal:
            mask = combine_masks(mask, causal_mask(num_queries, num_keys, q.device))

        row_has_key = None
        if mask is not None:
            row_has_key = mask.any(dim=-1, keepdim=True)  # (b, h|1, i, 1)
            mask = mask | ~row_has_key

        if self.fused and not need_weights:
            out = self._fused(q, k, v, mask, bias, use_builtin_causal)
            intermediates = AttentionIntermediates()
        else:
            out, intermediates = self._explicit(q, k, v, mask, bias, use_builtin_causal)

        if row_has_key is not None:
            out = out.masked_fill(~row_has_key, 0.0)
        return out, intermediates

    def _fused(self, q, k, v, mask, bias, is_causal: bool) -> Tensor:
        if bias is not None:
            # an additive bias is exact as a float mask; masked positions get the lowest value
            bias = bias.to(q.dtype)
            if mask is not None:
                bias = bias.masked_fill(~mask, torch.finfo(q.dtype).min)
            mask = bias
        return F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
            scale=self.scale,
        )

    def _explicit(self, q, k, v, mask, bias, is_causal: bool):
        scale = self.scale if self.scale is not None else q.shape[-1] ** -0.5
        scores = torch.einsum("b h i d, b h j d -> b h i j", q, k) * scale
        if bias is not None:
            scores = scores + bias
        if is_causal:
            mask = causal_mask(q.shape[-2], k.shape[-2], q.device)
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        attn = scores.softmax(dim=-1)
        dropped = F.dropout(attn, self.dropout, training=self.training)
        out = torch.einsum("b h i j, b h j d -> b h i d", dropped, v)
        return out, AttentionIntermediates(pre_softmax_scores=scores, post_softmax_attn=attn)
