"""Multi-head attention: projections, heads, declared stages, the kernel of :mod:`.attend` and
the output projection.

The forward is a recipe of named stages; each variant is a declared stage (:mod:`.stages`) at
one of its points, and a disabled structural step is ``None`` and costs one ``if``::

    (position-infused inputs) -> project -> split heads
        -> query/key transforms (collaborative mixing, qk-norm) -> 'projected' stages
        -> positions (rotary, score bias) -> KV cache -> persistent memory -> 'keys' stages
        -> attend (its own stages) -> 'output' stages -> merge heads -> output projection

Shape letters: b batch, n / i queries, j keys, h heads, d head dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..options import AttentionOptions
from .attend import AttentionIntermediates
from .builder import build_attend, build_stages, merge_stages
from .heads import CollaborativeHeads, resolve_head_shapes
from .memory_kv import MemoryKeyValues
from .output_gates import AttentionOnAttention
from .projections import AttentionProjections
from .qk_norm import build_qk_norm
from .stages import (
    KERNEL_POINTS,
    KEYS,
    OUTPUT,
    PROJECTED,
    STAGE_POINTS,
    AttentionStage,
    ForwardState,
)

if TYPE_CHECKING:
    from ..positional import Positions


class Attention(nn.Module):
    """Multi-head (self or cross) attention ("Attention Is All You Need", 1706.03762) with the
    variants of :mod:`x_transformers.options.attention`, each in its own module.

    Queries come from ``x``; keys and values from ``context`` when given (cross-attention), else
    from ``x``. ``dim_context`` is the width of the context when it differs from ``dim``.
    ``option_prefix`` is how the user spells these options (``attn_`` or ``cross_attn_``), for
    error messages. ``stages`` are declared stages contributed by the layer stack (residual
    attention, value residual); they run before the stages of the options at each point.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        options: AttentionOptions | None = None,
        *,
        causal: bool = False,
        dim_context: int | None = None,
        option_prefix: str = "attn_",
        stages: Sequence[AttentionStage] = (),
    ):
        super().__init__()
        options = AttentionOptions() if options is None else options
        prefix = option_prefix
        if options.num_mem_kv < 0:
            raise ValueError(f"'{prefix}num_mem_kv' must be >= 0, got {options.num_mem_kv}")
        self.heads = heads
        self.dim_context = dim_context or dim
        self.shapes = shapes = resolve_head_shapes(options, heads, prefix)
        self.proj = AttentionProjections(
            dim,
            self.dim_context,
            shapes,
            qkv_bias=options.qkv_bias,
            out_bias=options.out_bias,
            to_out=AttentionOnAttention(shapes.out_width, dim) if options.on_attn else None,
            fuse_qkv=dim_context is None,  # self-attention: one product for q, k and v
        )
        # --- query / key transforms ----------------------------------------------------------
        self.collab_heads = CollaborativeHeads(shapes) if options.collab_heads else None
        self.query_norm, self.key_norm = build_qk_norm(options, shapes.dim_qk, prefix)
        # --- extra keys / values -------------------------------------------------------------
        self.memory_kv = (
            MemoryKeyValues(options.num_mem_kv, shapes.kv_heads, shapes.dim_qk, shapes.dim_v)
            if options.num_mem_kv > 0
            else None
        )
        # --- declared stages: this module runs its points, the kernel runs its own ------------
        declared = merge_stages(stages, build_stages(options, shapes, dim, prefix))
        self.stages = declared.only(p for p in STAGE_POINTS if p not in KERNEL_POINTS)
        # a plain attribute: reading the (usually empty) StageList module costs a __getattr__
        self.has_stages = len(self.stages) > 0
        self.attend = build_attend(options, declared, causal=causal, prefix=prefix)

    @property
    def declared_stages(self) -> tuple[AttentionStage, ...]:
        """Every declared stage of this block: its own points, then the kernel's."""
        return (*self.stages.stages, *self.attend.stages.stages)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        need_weights: bool = False,
        positions: Positions | None = None,
        memory: Tensor | None = None,
        cache=None,
        state: ForwardState | None = None,
    ) -> tuple[Tensor, AttentionIntermediates]:
        """x (b, n, dim), context (b, j, dim_context); mask broadcastable to (b, h, n, j), True =
        attend; bias an additive score bias (.., n, j); need_weights: also return the attention
        maps (explicit path); positions the stack's :class:`~x_transformers.positional.Positions`
        (self-attention only); memory (b, m, dim) Transformer-XL memory, keys / values in front
        of x; cache this block's KV cache slot; state the stack forward's :class:`ForwardState`
        (what blocks hand to later blocks)."""
        kv_input = x if context is None else context
        if memory is not None:
            kv_input = torch.cat((memory, kv_input), dim=1)  # (b, m + n, dim)
        if cache is not None:  # project only what the cache does not hold yet
            kv_input = cache.pending(kv_input)
        # position-infused attention: sinusoids on the query / key inputs, never on the values
        q_input, k_input = (x, kv_input) if positions is None else positions.infuse(x, kv_input)
        q, k, v = self.proj.project_heads(q_input, k_input, kv_input, self.shapes)
        # per-head query / key transforms
        if self.collab_heads is not None:
            q, k = self.collab_heads(q, k)
        if self.query_norm is not None:
            q, k = self.query_norm(q), self.key_norm(k)
        stages = self.stages if self.has_stages else None
        if stages is not None:
            q, k, v = stages.run(PROJECTED, q, k, v, state=state)
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
        if stages is not None:
            k, v, mask, bias = stages.run(KEYS, k, v, mask, bias, state=state)
        out, intermediates = self.attend(
            q, k, v, mask=mask, bias=bias, need_weights=need_weights, state=state
        )
        if stages is not None:
            out = stages.run(OUTPUT, out, x, state=state)
        out = out.transpose(1, 2).flatten(-2)  # b h n d -> b n (h d)
        return self.proj.output(out), intermediates
