"""The layer stack: ``AttentionLayers`` and its three faces ``Encoder``, ``Decoder`` and
``CrossAttender``.

Shape letters: b batch, n sequence, d model width, j context length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..attention import ForwardState
from ..attention.masks import (
    combine_masks,
    full_to_attention_mask,
    key_padding_to_attention_mask,
    prepend_keys,
)
from ..finite_inputs import zero_masked
from ..hub.mixin import PretrainedMixin
from ..options import parse_layer_kwargs
from ..options.routing import resolve_context_width
from ..positional import Positions, build_positions
from ..positional.span import PositionSpan
from .builders import build_blocks, build_final_norm
from .checkpointing import checkpointed_call
from .conditioning import apply_norm, attach_condition, condition_width
from .hyper_connections import build_residual_streams
from .intermediates import LayerIntermediates
from .layout import CROSS_ATTENTION, FEEDFORWARD, SELF_ATTENTION, plan_layers
from .past import check_cache, check_memories, kv_cache_blockers
from .prefix import check_prefix_attn_len, prefix_causal_mask
from .reversible import check_reversible, run_reversible
from .unet import build_unet_skips
from .validation import (
    check_attn_mask,
    check_context,
    check_custom_positions,
    check_mask,
    check_self_attn_kv_mask,
)


@dataclass
class PreparedInputs:
    """What :meth:`AttentionLayers.prepare` computes once per forward for every block: the inputs
    of each block kind, the forward's state, the XL memories and the KV cache. An executor of the
    plan (the plain loop of :meth:`AttentionLayers.run_plan`, or another) takes it from there."""

    block_inputs: dict[str, dict]
    state: ForwardState
    mems: list[Tensor] | None = None
    cache: Any = None
    condition: Tensor | None = None  # (b, dim_condition), set by attach_condition


class AttentionLayers(PretrainedMixin, nn.Module):
    """A stack of residual attention / feedforward blocks on ``(b, n, dim)`` tensors.

    Args:
        dim: model width.
        depth: number of (attention, feedforward) units.
        heads: attention heads.
        causal: each position sees only itself and earlier positions.
        cross_attend: add a cross-attention block to every unit (``context=`` in forward).
        only_cross: cross-attention and feedforward only (no self-attention).
        dim_context: width of the cross-attention context when it differs from ``dim`` (also
            spelled ``cross_attn_dim_context``).
        **kwargs: feature keywords (``attn_*``, ``cross_attn_*``, ``ff_*`` and the stack keywords
            of the README); routed by :mod:`x_transformers.options`.
    """

    # the stack masks causally itself (PrefixDecoder): its attention blocks are built
    # bidirectional and prepare() gives them a causal mask with a bidirectional prefix
    masks_causally: bool = False

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int = 8,
        causal: bool = False,
        cross_attend: bool = False,
        only_cross: bool = False,
        dim_context: int | None = None,
        **kwargs,
    ):
        super().__init__()
        name = type(self).__name__
        dim_context, kwargs = resolve_context_width(dim_context, kwargs, name)
        self.config = parse_layer_kwargs(
            dim=dim,
            depth=depth,
            heads=heads,
            causal=causal,
            cross_attend=cross_attend,
            only_cross=only_cross,
            dim_context=dim_context,
            kwargs=kwargs,
            where=name,
        )
        self.dim, self.depth, self.heads, self.causal = dim, depth, heads, causal
        self.dim_context = dim_context or dim
        self.layer_kinds = plan_layers(self.config)
        self.has_cross_attention = CROSS_ATTENTION in self.layer_kinds
        self.blocks = build_blocks(self.layer_kinds, self.config, self.dim_context)
        # rotary / T5 / dynamic / ALiBi / position-infused: one provider shared by all blocks
        self.positions = build_positions(self.config)
        self.final_norm = build_final_norm(self.config)
        self.layer_dropout = self.config.blocks.layer_dropout
        # the keywords of the active features that cannot run with a KV cache (declared by them)
        self.kv_cache_blockers = kv_cache_blockers(self)
        # reversible layers (layers/reversible.py): the plan's (attention..., feedforward) units
        self.reversible_units = check_reversible(self) if self.config.blocks.reversible else None
        self.call_block = checkpointed_call if self.config.blocks.checkpoint_blocks else None
        # conditioning (DiT), hyper-connections, U-ViT skips: layers/conditioning.py,
        # layers/hyper_connections.py, layers/unet.py
        blocks = self.config.blocks
        self.dim_condition = condition_width(dim, blocks)  # None: no condition= is read
        self.residual_streams = build_residual_streams(blocks.num_residual_streams)
        self.unet_skips = build_unet_skips(dim, len(self.blocks), blocks.unet_skips)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        return_hiddens: bool = False,
        return_attn: bool = False,
        mems: list[Tensor] | None = None,
        cache=None,
        seq_start_pos: Tensor | None = None,
        pos: Tensor | None = None,
        self_attn_kv_mask: Tensor | None = None,
        prefix_attn_len: int | Tensor | None = None,
        condition: Tensor | None = None,
    ):
        """x (b, n, dim); mask (b, n) key padding, True = keep; context (b, j, dim_context);
        context_mask (b, j); attn_mask (n, n), (b, n, n) or (b, heads, n, n), True = may attend;
        self_attn_kv_mask (b, j) which self-attention keys (memories, then x) may be attended to.

        ``mems``: Transformer-XL memories, one (b, m, dim) per self-attention block, attended to
        before x (positions of x start at m); a ``mask`` (b, m) attribute on the list (as the
        wrappers' ``return_mems`` give it) keeps remembered padding masked. ``cache``: a KV
        cache (see :mod:`x_transformers.generation.kv_cache`); x holds the positions after the
        cached ones, and ``mask`` only covers x. ``seq_start_pos`` (b,): every position of row b
        is shifted down by it (left-padded rows see the positions they would see alone).
        ``pos`` (n,) or (b, n): custom integer positions of x for every positional scheme
        (rotary, xPos, position-infused; the relative biases from their differences); a plain
        forward only. ``prefix_attn_len`` (int or (b,)): :class:`PrefixDecoder` only.
        ``condition`` (b, dim_condition): the vector adaptive norms and gates read."""
        prepared = self.prepare(
            x,
            mask,
            context,
            context_mask,
            attn_mask,
            return_attn,
            mems,
            cache,
            seq_start_pos,
            pos=pos,
            self_attn_kv_mask=self_attn_kv_mask,
            prefix_attn_len=prefix_attn_len,
        )
        attach_condition(self, x, prepared, condition)  # DiT conditioning, when the stack reads it
        x = zero_masked(x, mask)  # a NaN at a padded position must not reach any product
        if self.reversible_units is not None:
            x, intermediates = run_reversible(self, x, prepared)
        else:
            x, intermediates = self.run_plan(x, prepared, self.call_block)
        return (x, intermediates) if return_hiddens else x

    def prepare(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        return_attn: bool = False,
        mems: list[Tensor] | None = None,
        cache=None,
        seq_start_pos: Tensor | None = None,
        *,
        pos: Tensor | None = None,
        self_attn_kv_mask: Tensor | None = None,
        prefix_attn_len: int | Tensor | None = None,
    ) -> PreparedInputs:
        """Validate the inputs and compute, once per forward, what the blocks receive: masks,
        positions, memories and cache (see :meth:`forward` for the arguments)."""
        check_mask(x, mask, "mask")
        check_attn_mask(x, attn_mask, self.heads)
        check_context(self, x, context, context_mask)
        context = zero_masked(context, context_mask)  # never in a product: 0 * nan = nan
        memory_length = check_memories(mems, x, self.layer_kinds.count(SELF_ATTENTION), cache)
        check_cache(self, cache, attn_mask)
        check_custom_positions(pos, x, mems, cache, seq_start_pos)
        check_self_attn_kv_mask(x, self_attn_kv_mask, memory_length + x.shape[1], cache)
        if prefix_attn_len is not None and not self.masks_causally:
            raise TypeError(
                f"'prefix_attn_len' needs a PrefixDecoder; {type(self).__name__} has no prefix"
            )
        prefix_attn_len = check_prefix_attn_len(prefix_attn_len, x, cache, mems)
        span = self._span(x, memory_length, cache, seq_start_pos)
        self_mask = self._self_attention_mask(x, mask, attn_mask, mems, cache)
        self_mask = combine_masks(self_mask, key_padding_to_attention_mask(self_attn_kv_mask))
        if self.masks_causally:
            self_mask = combine_masks(
                self_mask, prefix_causal_mask(span, prefix_attn_len, x.device)
            )
        state = ForwardState()
        attention_inputs = {"need_weights": return_attn, "padding_mask": mask, "state": state}
        block_inputs = {
            SELF_ATTENTION: {
                "mask": self_mask,
                "positions": self._positions(x, span, pos),
                **attention_inputs,
            },
            CROSS_ATTENTION: {
                "context": context,
                "mask": key_padding_to_attention_mask(context_mask),
                **attention_inputs,
            },
            FEEDFORWARD: {"padding_mask": mask},
        }
        return PreparedInputs(block_inputs, state, mems, cache)

    def run_plan(
        self, x: Tensor, prepared: PreparedInputs, call_block=None
    ) -> tuple[Tensor, LayerIntermediates]:
        """Run every block of the plan on x with the prepared inputs, then the final norm.
        ``call_block(block, x, inputs, past)`` runs one block (activation checkpointing)."""
        intermediates = LayerIntermediates(state=prepared.state)
        condition, saved = prepared.condition, []  # saved: the inputs the U-Net skips reuse
        if self.residual_streams is not None:  # hyper-connections: (b, n, d) -> (b, n, s, d)
            x = self.residual_streams.expand(x)
        for index, (kind, block) in enumerate(zip(self.layer_kinds, self.blocks)):
            past = self._past_inputs(index, block, prepared.mems, prepared.cache, condition)
            if self.unet_skips is not None:
                x = self.unet_skips(index, x, saved)
            block_input = x if self.residual_streams is None else block.block_input(x)
            if kind == SELF_ATTENTION:
                intermediates.self_attention_inputs.append(block_input)
            if self._skip_block():
                continue
            intermediates.hiddens.append(block_input)
            if call_block is None:
                x, attention_intermediates = block(x, **prepared.block_inputs[kind], **past)
            else:
                x, attention_intermediates = call_block(block, x, prepared.block_inputs[kind], past)
            if attention_intermediates is not None:
                intermediates.attn_intermediates.append(attention_intermediates)
        if self.residual_streams is not None:  # (b, n, s, d) -> (b, n, d)
            x = self.residual_streams.reduce(x)
        x = apply_norm(self.final_norm, x, condition)
        if prepared.cache is not None:
            prepared.cache.advance(x.shape[1])
            intermediates.cache = prepared.cache
        return x, intermediates

    def _self_attention_mask(self, x, mask, attn_mask, mems, cache):
        """(b|1, 1, i, j) self-attention mask: key padding and ``attn_mask`` (memories in front
        are visible unless their ``mask`` says they were padding), or the cache's mask of past
        and new keys; None = no restriction."""
        if cache is not None:
            visible = cache.visible_keys(x, mask)
            if self.masks_causally:  # the cache's key padding only: prepare() adds causality
                return key_padding_to_attention_mask(cache.key_padding)
            return visible
        memory_length = 0 if mems is None else mems[0].shape[1]
        if memory_length > 0:  # memories are keys in front of x
            memory_mask = getattr(mems, "mask", None)  # (b, m), False = remembered padding
            if mask is not None or memory_mask is not None:
                if mask is None:
                    mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
                if memory_mask is None:
                    memory_mask = mask.new_ones(mask.shape[0], memory_length)
                mask = torch.cat((memory_mask, mask), dim=1)
            if attn_mask is not None:
                attn_mask = prepend_keys(attn_mask, memory_length, True)
        if attn_mask is not None and attn_mask.ndim < 4:  # (b, h, i, j) per head is ready
            attn_mask = full_to_attention_mask(attn_mask)
        return combine_masks(key_padding_to_attention_mask(mask), attn_mask)

    def _span(self, x: Tensor, memory_length: int, cache, row_offset=None) -> PositionSpan:
        """Where this forward's queries and keys sit. The queries are the newest positions:
        after XL memories (offset = memory length) or after what a KV cache holds. The span also
        says which keys this forward projects: all of them (memories and x), or only x's with a
        cache (whose ``position_span(num_new)`` describes its key layout). ``row_offset`` (b,)
        shifts each row's positions down (left-padded rows)."""
        n = x.shape[1]
        if cache is not None:
            span = cache.position_span(n)
        else:
            span = {"num_keys": memory_length + n, "offset": memory_length}
        return PositionSpan.for_lengths(n, **span, row_offset=row_offset)

    def _positions(self, x: Tensor, span: PositionSpan, pos: Tensor | None) -> Positions | None:
        """Positions of this forward, computed once for every self-attention block (None without
        a positional scheme), for the span or for custom positions ``pos``."""
        if self.positions is None:
            return None
        return self.positions(
            span.num_queries,
            span.num_keys,
            span.query_start,
            span.key_start,
            span.num_new_keys,
            span.row_offset,
            pos,
            device=x.device,
            dtype=x.dtype,
        )

    def _past_inputs(self, index: int, block: nn.Module, mems, cache, condition=None) -> dict:
        """What an attention block sees of the past: its XL memory (normalised like its input,
        with the forward's condition) and its KV cache slot."""
        kind = self.layer_kinds[index]
        if kind not in (SELF_ATTENTION, CROSS_ATTENTION):
            return {}
        past = {}
        if cache is not None:
            past["cache"] = cache.slot(index, context=kind == CROSS_ATTENTION)
        if mems is not None and kind == SELF_ATTENTION:
            memory = mems[self.layer_kinds[:index].count(SELF_ATTENTION)]
            past["memory"] = block.normalize_input(memory, condition)
        return past

    def _skip_block(self) -> bool:
        """Stochastic depth ("Deep Networks with Stochastic Depth", 1603.09382): training only."""
        if not self.training or self.layer_dropout <= 0:
            return False
        return torch.rand(()).item() < self.layer_dropout


class Encoder(AttentionLayers):
    """A bidirectional stack: every position sees every other (BERT-like)."""

    def __init__(self, dim: int, depth: int, **kwargs):
        if "causal" in kwargs:
            raise TypeError("Encoder is never causal; use Decoder for a causal stack")
        super().__init__(dim, depth, causal=False, **kwargs)


class Decoder(AttentionLayers):
    """A causal stack: position t sees positions <= t (GPT-like)."""

    def __init__(self, dim: int, depth: int, **kwargs):
        if "causal" in kwargs:
            raise TypeError("Decoder is always causal; use Encoder for a bidirectional stack")
        super().__init__(dim, depth, causal=True, **kwargs)


class PrefixDecoder(AttentionLayers):
    """A causal stack whose first ``prefix_attn_len`` positions (given at call time: an int or
    per-row lengths (b,)) see each other bidirectionally: the prefix LM of UniLM (1905.03197) and
    T5 (1910.10683). ``model(x, prefix_attn_len=4)``; without a prefix it is a ``Decoder``.

    Its attention blocks and relative biases are built bidirectional (T5 and ALiBi give keys in
    the future their own buckets / slopes); the stack's mask makes them causal outside the
    prefix (:mod:`x_transformers.layers.prefix`). With a KV cache the prefix is prefilled in one
    forward; later tokens are causal."""

    masks_causally = True

    def __init__(self, dim: int, depth: int, **kwargs):
        if "causal" in kwargs:
            raise TypeError("PrefixDecoder is causal after its prefix; it takes no 'causal'")
        super().__init__(dim, depth, causal=False, **kwargs)
        self.causal = True  # for caching and generation: causal after the prefix


class CrossAttender(AttentionLayers):
    """Cross-attention and feedforward blocks only: ``model(x, context=..., context_mask=...)``."""

    def __init__(self, dim: int, depth: int, **kwargs):
        if "only_cross" in kwargs:
            raise TypeError("CrossAttender always has only_cross=True")
        super().__init__(dim, depth, only_cross=True, **kwargs)
