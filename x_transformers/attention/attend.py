"""The attention kernel: scores -> transforms -> mask -> softmax variant -> dropout -> values.

Two paths compute the same function:

- the fused path, ``F.scaled_dot_product_attention`` (FlashAttention / memory-efficient kernels,
  2205.14135). It expresses causal and padding masks, additive score biases (exactly, as a float
  mask), memory key/values (extra keys plus a mask), grouped-query / multi-query heads
  (``enable_gqa``) and dropout;
- the explicit path, which materialises the (b, h, i, j) scores so that declared stages
  (:mod:`.stages`) can transform them and so that the weights can be returned::

      'similarity' stages (q, k) -> scores = scale * q.k -> 'scores' stages -> + bias -> mask
          -> 'masked' stages -> softmax (or the 'normalize' stage) -> 'weights' stages
          -> dropout -> weights . v

The choice is made once at construction, from the stages' own declarations (``stage.fused``),
and exposed as ``Attend.fused`` with ``Attend.fused_reason``. Asking for the fused kernel
(``attn_flash=True``) together with a stage that needs the matrix raises a ``ValueError``
naming both keywords, and so does ``return_attn=True`` at call time: ``attn_flash=True`` is a
requirement, never a hint.
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

from ..backend import SDPA_SUPPORTS_GQA
from .masks import causal_mask, combine_masks
from .stages import KERNEL_POINTS, MASKED, NORMALIZE, SCORES, SIMILARITY, WEIGHTS, StageList

MASK_MEMO = "attend_masks"  # ForwardState.derived keys of Attend's combined masks


@dataclass
class AttentionIntermediates:
    """What one attention call can hand back to the stack (None when not computed).

    - ``pre_softmax_scores``: the scores the softmax variant receives (after the score stages,
      bias, mask and the masked-score stages; masked entries hold ``finfo.min``);
    - ``post_softmax_attn``: the softmax (or normalize stage) weights, before the weight stages
      and dropout; rows without a visible key are zero.

    Both are computed with ``need_weights`` only. What a block hands to later blocks is not
    here but in the forward's :class:`~x_transformers.attention.stages.ForwardState`.
    """

    pre_softmax_scores: Tensor | None = None  # (b, h, i, j)
    post_softmax_attn: Tensor | None = None  # (b, h, i, j)


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


def _fused_reason(blockers: tuple[str, ...]) -> str:
    if not blockers:
        return "fused: F.scaled_dot_product_attention expresses every active stage"
    return f"explicit: {', '.join(blockers)} need(s) the attention matrix"


class Attend(nn.Module):
    """Scaled dot-product attention ("Attention Is All You Need", 1706.03762) with a fused and an
    explicit path that agree numerically.

    Args:
        causal: queries only see keys at or before their own position (bottom-right aligned).
        dropout: dropout on the attention weights (training only).
        scale: multiplier of q.k; defaults to ``dim_head ** -0.5`` of the incoming queries
            (before any 'similarity' stage widens them).
        flash: the user asked for the fused kernel (``flash_keyword``); a ``ValueError`` naming
            both keywords is raised when a stage declares that the fused kernel cannot run it.
        stages: the declared stages at the kernel's points ('similarity', 'scores', 'masked',
            'normalize', 'weights'); the fused path is used exactly when every one of them
            declares ``fused = True``.
    """

    def __init__(
        self,
        *,
        causal: bool = False,
        dropout: float = 0.0,
        scale: float | None = None,
        flash: bool = False,
        flash_keyword: str = "attn_flash",
        stages: StageList | None = None,
    ):
        super().__init__()
        self.causal = causal
        self.dropout = dropout
        self.scale = scale
        self.flash, self.flash_keyword = flash, flash_keyword
        stages = StageList() if stages is None else stages
        misplaced = [s.keyword for s in stages.stages if s.point not in KERNEL_POINTS]
        if misplaced:
            raise ValueError(f"Attend runs the kernel's points only; got stages of {misplaced}")
        self.stages = stages
        self.has_stages = len(stages) > 0  # a plain attribute, read on every call
        blockers = stages.not_fused()
        self.fused = not blockers
        self.fused_reason = _fused_reason(blockers)
        if flash and not self.fused:
            raise ValueError(
                f"'{flash_keyword}=True' cannot be combined with "
                f"{', '.join(map(repr, blockers))}: they need the attention matrix, which the "
                f"fused kernel never materialises; drop '{flash_keyword}' or the feature"
            )

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        need_weights: bool = False,
        state=None,
    ) -> tuple[Tensor, AttentionIntermediates]:
        """q (b, h, i, d), k (b, k, j, d), v (b, k, j, dv) with h a multiple of k; mask
        broadcastable to (b, h, i, j), True = attend; bias an additive score bias broadcastable
        to (b, h, i, j); state the forward's :class:`ForwardState` (read and written by stages
        that hand something to later blocks)."""
        num_queries, num_keys = q.shape[-2], k.shape[-2]
        scale = self.scale if self.scale is not None else q.shape[-1] ** -0.5
        if self.has_stages and self.stages.has(SIMILARITY):
            q, k = self.stages.run(SIMILARITY, q, k, state=state)
        # SDPA's is_causal cannot be combined with a float mask, so a bias takes the mask path
        use_builtin_causal = (
            self.causal and mask is None and bias is None and num_queries == num_keys
        )
        # a single query is the newest position and sees every key: no causal mask (decoding)
        add_causal = self.causal and not use_builtin_causal and num_queries > 1
        mask, row_without_key = self._effective_mask(
            mask, add_causal, num_queries, num_keys, q.device, state
        )

        if need_weights and self.flash:
            raise ValueError(
                f"'{self.flash_keyword}=True' cannot return attention maps ('return_attn=True'):"
                " the fused kernel never materialises them"
            )
        if self.fused and not need_weights:
            out = self._fused(q, k, v, mask, bias, use_builtin_causal, scale)
            intermediates = AttentionIntermediates()
        else:
            out, intermediates = self._explicit(
                q, k, v, mask, bias, use_builtin_causal, scale, row_without_key, need_weights, state
            )

        if row_without_key is not None:
            out = out.masked_fill(row_without_key, 0.0)
        return out, intermediates

    @staticmethod
    def _effective_mask(mask, add_causal: bool, num_queries: int, num_keys: int, device, state):
        """The mask the kernels read (the causal mask combined in; rows without any key opened,
        their output zeroed afterwards) and ``row_without_key`` (b, h|1, i, 1). The blocks of one
        forward get the same mask tensors, so each is combined once per forward and shared
        through the forward's state, not once per block."""
        if mask is None and not add_causal:
            return None, None
        memo = None if state is None else state.derived
        # the lengths only matter for the causal mask (hashing a compiled step's symbolic key
        # length would specialise the graph on it)
        memo_key = (MASK_MEMO, id(mask)) + ((num_queries, num_keys) if add_causal else ())
        if memo is not None and memo_key in memo and memo[memo_key][0] is mask:
            return memo[memo_key][1]
        given = mask
        if add_causal:
            mask = combine_masks(mask, causal_mask(num_queries, num_keys, device))
        row_without_key = ~mask.any(dim=-1, keepdim=True)  # (b, h|1, i, 1)
        result = (mask | row_without_key, row_without_key)
        if memo is not None:
            memo[memo_key] = (given, result)  # keeps `given` alive, so its id is not reused
        return result

    def _fused(self, q, k, v, mask, bias, is_causal: bool, scale: float) -> Tensor:
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
            scale=scale,
            **grouped,
        )

    def _explicit(
        self, q, k, v, mask, bias, is_causal, scale, row_without_key, need_weights, state
    ) -> tuple[Tensor, AttentionIntermediates]:
        stages = self.stages
        scores = similarity(q, k) * scale  # (b, h, i, j)
        scores = stages.run(SCORES, scores, state=state)
        if bias is not None:
            scores = scores + bias
        if is_causal:
            mask = causal_mask(q.shape[-2], k.shape[-2], q.device)
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        scores = stages.run(MASKED, scores, state=state)
        if stages.has(NORMALIZE):
            attn = stages.run(NORMALIZE, scores, state=state)
        else:
            attn = scores.softmax(dim=-1)
        weights = stages.run(WEIGHTS, attn, state=state)
        weights = F.dropout(weights, self.dropout, training=self.training)
        out = aggregate(weights, v)

        intermediates = AttentionIntermediates()
        if need_weights:
            if row_without_key is not None:
                attn = attn.masked_fill(row_without_key, 0.0)
            intermediates.pre_softmax_scores = scores
            intermediates.post_softmax_attn = attn
        return out, intermediates
