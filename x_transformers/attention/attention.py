"""Multi-head attention: projections, heads, per-head query/key transforms, the kernel of
:mod:`.attend`, output gates and the output projection.

The forward is a recipe of named stages; a disabled stage is ``None`` and costs one ``if``::

    (position-infused inputs) -> project -> split heads
        -> query/key transforms (collaborative mixing, qk-norm) -> positions (rotary, score bias)
        -> extra keys/values (persistent memory) -> attend
        -> output gates (value gate, head scale) -> merge heads -> output projection (or AoA)

Shape letters: b batch, n / i queries, j keys, h heads, d head dimension.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..options import AttentionOptions
from .attend import Attend, AttentionIntermediates
from .entmax import Entmax15
from .heads import CollaborativeHeads, HeadShapes, resolve_head_shapes, split_heads
from .memory_kv import MemoryKeyValues
from .output_gates import AttentionOnAttention, HeadScale, ValueGate
from .qk_norm import build_qk_norm
from .sparse_topk import SparseTopK
from .talking_heads import HeadMixing

if TYPE_CHECKING:
    from ..positional import Positions


def residual_keyword(prefix: str) -> str:
    """The stack keyword that turns on residual attention for blocks with this option prefix."""
    return "cross_residual_attn" if prefix.startswith("cross") else "residual_attn"


def features_needing_matrix(
    options: AttentionOptions, prefix: str = "attn_", residual_attn: bool = False
) -> tuple[str, ...]:
    """Active keywords that need the attention matrix (the fused kernel cannot run them)."""
    wanted = ("sparse_topk", "use_entmax15", "talking_heads")
    names = tuple(prefix + name for name in wanted if getattr(options, name))
    return names + ((residual_keyword(prefix),) if residual_attn else ())


def build_attend(
    options: AttentionOptions,
    shapes: HeadShapes,
    *,
    causal: bool,
    prefix: str,
    residual_attn: bool,
) -> Attend:
    """The kernel with the score / weight transforms the options ask for."""
    if not 0.0 <= options.dropout < 1.0:
        raise ValueError(f"'{prefix}dropout' must lie in [0, 1), got {options.dropout}")
    if options.sparse_topk is not None and options.sparse_topk < 1:
        raise ValueError(f"'{prefix}sparse_topk' must be >= 1, got {options.sparse_topk}")
    return Attend(
        causal=causal,
        dropout=options.dropout,
        # qk-norm puts its scale on the queries, so the kernel must not scale again
        scale=1.0 if options.qk_norm else None,
        flash=options.flash,
        flash_keyword=f"{prefix}flash",
        needs_matrix=features_needing_matrix(options, prefix, residual_attn),
        pre_softmax=HeadMixing(shapes.heads) if options.talking_heads else None,
        sparsify=SparseTopK(options.sparse_topk) if options.sparse_topk is not None else None,
        normalize=Entmax15() if options.use_entmax15 else None,
        post_softmax=HeadMixing(shapes.heads) if options.talking_heads else None,
        residual=residual_attn,
    )


class Attention(nn.Module):
    """Multi-head (self or cross) attention ("Attention Is All You Need", 1706.03762) with the
    variants of :mod:`x_transformers.options.attention`, each in its own module.

    Queries come from ``x``; keys and values from ``context`` when given (cross-attention), else
    from ``x``. ``dim_context`` is the width of the context when it differs from ``dim``.
    ``option_prefix`` is how the user spells these options (``attn_`` or ``cross_attn_``), for
    error messages. ``residual_attn`` adds the previous block's scores (RealFormer, 2012.11747).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        options: AttentionOptions,
        *,
        causal: bool = False,
        dim_context: int | None = None,
        option_prefix: str = "attn_",
        residual_attn: bool = False,
    ):
        super().__init__()
        prefix = option_prefix
        if options.num_mem_kv < 0:
            raise ValueError(f"'{prefix}num_mem_kv' must be >= 0, got {options.num_mem_kv}")
        self.heads = heads
        self.dim_context = dim_context or dim
        self.shapes = shapes = resolve_head_shapes(options, heads, prefix)
        # --- projections ---------------------------------------------------------------------
        self.to_q = nn.Linear(dim, shapes.q_width, bias=False)
        self.to_kv = nn.Linear(self.dim_context, shapes.k_width + shapes.v_width, bias=False)
        # --- query / key transforms ----------------------------------------------------------
        self.collab_heads = CollaborativeHeads(shapes) if options.collab_heads else None
        self.query_norm, self.key_norm = build_qk_norm(options, shapes.dim_qk, prefix)
        # --- extra keys / values -------------------------------------------------------------
        self.memory_kv = (
            MemoryKeyValues(options.num_mem_kv, shapes.kv_heads, shapes.dim_qk, shapes.dim_v)
            if options.num_mem_kv > 0
            else None
        )
        # --- kernel --------------------------------------------------------------------------
        self.attend = build_attend(
            options, shapes, causal=causal, prefix=prefix, residual_attn=residual_attn
        )
        # --- output gates and projection -----------------------------------------------------
        self.value_gate = ValueGate(dim, heads, shapes.dim_v) if options.gate_values else None
        self.head_scale = HeadScale(heads) if options.head_scale else None
        self.to_out = (
            AttentionOnAttention(shapes.out_width, dim)
            if options.on_attn
            else nn.Linear(shapes.out_width, dim, bias=False)
        )

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        prev_scores: Tensor | None = None,
        need_weights: bool = False,
        positions: Positions | None = None,
        memory: Tensor | None = None,
        cache=None,
    ) -> tuple[Tensor, AttentionIntermediates]:
        """x (b, n, dim), context (b, j, dim_context); mask broadcastable to (b, h, n, j), True =
        attend; bias an additive score bias (.., n, j); prev_scores (b, h, n, j) for residual
        attention; need_weights: also return the attention maps (explicit path); positions the
        stack's :class:`~x_transformers.positional.Positions` (self-attention only); memory
        (b, m, dim) Transformer-XL memory, keys / values in front of x; cache this block's KV
        cache slot (:mod:`x_transformers.generation.kv_cache`)."""
        kv_input = x if context is None else context
        if memory is not None:
            kv_input = torch.cat((memory, kv_input), dim=1)  # (b, m + n, dim)
        if cache is not None:  # project only what the cache does not hold yet
            kv_input = cache.pending(kv_input)
        # position-infused attention: sinusoids on the query / key inputs, never on the values
        q_input, k_input = (x, kv_input) if positions is None else positions.infuse(x, kv_input)
        q, k, v = split_heads(self.to_q(q_input), self.project_kv(k_input, kv_input), self.shapes)
        # per-head query / key transforms
        if self.collab_heads is not None:
            q, k = self.collab_heads(q, k)
        if self.query_norm is not None:
            q, k = self.query_norm(q), self.key_norm(k)
        # positions: rotary / xPos on q and k, relative score bias (T5, dynamic, ALiBi)
        if positions is not None:
            q, k = positions.rotate(q, k)
            bias = positions.add_bias(bias)
        # KV cache: the new keys / values join the cached ones
        if cache is not None:
            k, v = cache.extend(k, v)
        # extra keys / values
        if self.memory_kv is not None:
            k, v, mask, bias = self.memory_kv(k, v, mask, bias, key_norm=self.key_norm)
        out, intermediates = self.attend(
            q, k, v, mask=mask, bias=bias, prev_scores=prev_scores, need_weights=need_weights
        )
        # output gates
        if self.value_gate is not None:
            out = self.value_gate(out, x)
        if self.head_scale is not None:
            out = self.head_scale(out)
        out = out.transpose(1, 2).flatten(-2)  # b h n d -> b n (h d)
        return self.to_out(out), intermediates

    def project_kv(self, k_input: Tensor, v_input: Tensor) -> Tensor:
        """(b, j, k_width + v_width) keys and values; their inputs differ only with
        position-infused attention, which then splits the fused projection."""
        if k_input is v_input:
            return self.to_kv(v_input)
        w_k, w_v = self.to_kv.weight.split((self.shapes.k_width, self.shapes.v_width))
        return torch.cat((F.linear(k_input, w_k), F.linear(v_input, w_v)), dim=-1)
