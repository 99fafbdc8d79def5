"""The attention kernel: scores -> transforms -> mask -> softmax variant -> dropout -> values.

Two paths compute the same function:

- the fused path, ``F.scaled_dot_product_attention`` (FlashAttention / memory-efficient kernels,
  2205.14135). It expresses causal and padding masks, additive score biases (exactly, as a float
  mask), memory key/values (extra keys plus a mask), grouped-query / multi-query heads
  (``enable_gqa``) and dropout;
- the explicit path, which materialises the (b, h, i, j) scores so that features can transform
  them and so that the weights can be returned::

      scores = scale * q.k (+ previous scores: residual attention)
          -> pre-softmax transform (talking heads) -> + bias -> mask
          -> sparsify (top-k) -> softmax or entmax-1.5
          -> post-softmax transform (talking heads) -> dropout -> weights . v

The choice is made once at construction, from the active features, and exposed as
``Attend.fused`` with ``Attend.fused_reason``. Asking for the fused kernel (``attn_flash=True``)
together with a feature that needs the matrix raises a ``ValueError`` naming both keywords, and
so does ``return_attn=True`` at call time: ``attn_flash=True`` is a requirement, never a hint.
Without ``attn_flash`` the fused path is simply used whenever it can express the features.

A query row with no visible key (for example a fully padded sequence) yields zeros on both paths:
such rows are unmasked before the softmax (so it stays finite, also for top-k and entmax) and
zeroed afterwards; their returned weights are zero too.

Shape letters: b batch, h query heads, k key/value heads, g query heads per key/value head,
i queries, j keys, d head dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .masks import causal_mask, combine_masks

# F.scaled_dot_product_attention takes enable_gqa from torch 2.5 on
SDPA_SUPPORTS_GQA = torch.torch_version.TorchVersion(torch.__version__) >= (2, 5)


@dataclass
class AttentionIntermediates:
    """What one attention call can hand back to the stack (None when not computed).

    - ``pre_softmax_scores``: the scores the softmax variant receives (after bias, talking-heads
      mixing, mask and top-k; masked entries hold ``finfo.min``); with ``need_weights`` only;
    - ``post_softmax_attn``: the softmax / entmax weights, before talking-heads mixing and
      dropout; rows without a visible key are zero; with ``need_weights`` only;
    - ``residual_scores``: the scores carried to the next block of the same kind by residual
      attention (RealFormer, 2012.11747): ``scale * q.k + previous``, before bias and mask.
    """

    pre_softmax_scores: Tensor | None = None  # (b, h, i, j)
    post_softmax_attn: Tensor | None = None  # (b, h, i, j)
    residual_scores: Tensor | None = None  # (b, h, i, j)


def similarity(q: Tensor, k: Tensor) -> Tensor:
    """q (b, h, i, d), k (b, k, j, d) with h a multiple of k -> scores (b, h, i, j); query head h
    reads key head h // g without copying the keys."""
    q = rearrange(q, "b (k g) i d -> b k g i d", k=k.shape[1])
    scores = torch.einsum("b k g i d, b k j d -> b k g i j", q, k)
    return rearrange(scores, "b k g i j -> b (k g) i j")


def aggregate(weights: Tensor, v: Tensor) -> Tensor:
    """weights (b, h, i, j), v (b, k, j, d) -> (b, h, i, d), grouped like :func:`similarity`."""
    weights = rearrange(weights, "b (k g) i j -> b k g i j", k=v.shape[1])
    out = torch.einsum("b k g i j, b k j d -> b k g i d", weights, v)
    return rearrange(out, "b k g i d -> b (k g) i d")


def _fused_reason(needs_matrix: tuple[str, ...]) -> str:
    if not needs_matrix:
        return "fused: F.scaled_dot_product_attention expresses every active feature"
    return f"explicit: {', '.join(needs_matrix)} need(s) the attention matrix"


class Attend(nn.Module):
    """Scaled dot-product attention ("Attention Is All You Need", 1706.03762) with a fused and an
    explicit path that agree numerically.

    Args:
        causal: queries only see keys at or before their own position (bottom-right aligned).
        dropout: dropout on the attention weights (training only).
        scale: multiplier of q.k; defaults to ``dim_head ** -0.5``.
        flash: the user asked for the fused kernel (``flash_keyword``); a ``ValueError`` is
            raised when an active feature (listed in ``needs_matrix``) requires the explicit path.
        needs_matrix: the active keywords that need the attention matrix; the fused path is used
            exactly when this is empty.
        pre_softmax: transform of the (b, h, i, j) scores before bias and mask (talking heads).
        sparsify: transform of the masked scores (top-k).
        normalize: scores -> weights along the keys (softmax by default; entmax-1.5).
        post_softmax: transform of the weights (talking heads).
        residual: add ``prev_scores`` to the scores and hand them on (residual attention).
    """

    def __init__(
        self,
        *,
        causal: bool = False,
        dropout: float = 0.0,
        scale: float | None = None,
        flash: bool = False,
        flash_keyword: str = "attn_flash",
        needs_matrix: tuple[str, ...] = (),
        pre_softmax: nn.Module | None = None,
        sparsify: nn.Module | None = None,
        normalize: nn.Module | None = None,
        post_softmax: nn.Module | None = None,
        residual: bool = False,
    ):
        super().__init__()
        self.causal = causal
        self.dropout = dropout
        self.scale = scale
        self.flash, self.flash_keyword = flash, flash_keyword
        self.pre_softmax = pre_softmax
        self.sparsify = sparsify
        self.normalize = normalize
        self.post_softmax = post_softmax
        self.residual = residual
        transforms = (pre_softmax, sparsify, normalize, post_softmax)
        if not needs_matrix and (residual or any(t is not None for t in transforms)):
            raise ValueError("Attend: matrix transforms were given but 'needs_matrix' is empty")
        self.fused = not needs_matrix
        self.fused_reason = _fused_reason(needs_matrix)
        if flash and not self.fused:
            raise ValueError(
                f"'{flash_keyword}=True' cannot be combined with "
                f"{', '.join(map(repr, needs_matrix))}: they need the attention matrix, which the "
                f"fused kernel never materialises; drop '{flash_keyword}' or the feature"
            )

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        prev_scores: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, AttentionIntermediates]:
        """q (b, h, i, d), k (b, k, j, d), v (b, k, j, dv) with h a multiple of k; mask
        broadcastable to (b, h, i, j), True = attend; bias an additive score bias broadcastable
        to (b, h, i, j); prev_scores (b, h, i, j) the residual scores of the previous block."""
        num_queries, num_keys = q.shape[-2], k.shape[-2]
        # SDPA's is_causal cannot be combined with a float mask, so a bias takes the mask path
        use_builtin_causal = (
            self.causal and mask is None and bias is None and num_queries == num_keys
        )
        # a single query is the newest position and sees every key: no causal mask (decoding)
        if self.causal and not use_builtin_causal and num_queries > 1:
            mask = combine_masks(mask, causal_mask(num_queries, num_keys, q.device))

        row_has_key = None
        if mask is not None:
            row_has_key = mask.any(dim=-1, keepdim=True)  # (b, h|1, i, 1)
            mask = mask | ~row_has_key

        if need_weights and self.flash:
            raise ValueError(
                f"'{self.flash_keyword}=True' cannot return attention maps ('return_attn=True'):"
                " the fused kernel never materialises them"
            )
        if self.fused and not need_weights:
            out = self._fused(q, k, v, mask, bias, use_builtin_causal)
            intermediates = AttentionIntermediates()
        else:
            out, intermediates = self._explicit(
                q, k, v, mask, bias, prev_scores, use_builtin_causal, row_has_key, need_weights
            )

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
        grouped = {}
        if k.shape[1] != q.shape[1]:
            if SDPA_SUPPORTS_GQA:
                grouped = {"enable_gqa": True}
            else:
                group = q.shape[1] // k.shape[1]
                k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        return F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
            scale=self.scale,
            **grouped,
        )

    def _explicit(
        self, q, k, v, mask, bias, prev_scores, is_causal, row_has_key, need_weights
    ) -> tuple[Tensor, AttentionIntermediates]:
        scale = self.scale if self.scale is not None else q.shape[-1] ** -0.5
        scores = similarity(q, k) * scale  # (b, h, i, j)
        if prev_scores is not None:
            scores = scores + prev_scores
        residual_scores = scores if self.residual else None
        if self.pre_softmax is not None:
            scores = self.pre_softmax(scores)
        if bias is not None:
            scores = scores + bias
        if is_causal:
            mask = causal_mask(q.shape[-2], k.shape[-2], q.device)
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        if self.sparsify is not None:
            scores = self.sparsify(scores)
        attn = scores.softmax(dim=-1) if self.normalize is None else self.normalize(scores)
        weights = attn if self.post_softmax is None else self.post_softmax(attn)
        weights = F.dropout(weights, self.dropout, training=self.training)
        out = aggregate(weights, v)

        intermediates = AttentionIntermediates(residual_scores=residual_scores)
        if need_weights:
            if row_has_key is not None:
                attn = attn.masked_fill(~row_has_key, 0.0)
            intermediates.pre_softmax_scores = scores
            intermediates.post_softmax_attn = attn
        return out, intermediates
