"""``SequenceWrapper``: the forward shared by the token and the continuous wrappers.

    inputs ── embed ── stem (positions, prepended embeddings) ── memory stage ── layer stack
           ── head ──> outputs

Subclasses say how inputs are checked and embedded (``check_inputs``, ``embed``) and what the
head is (``head``); everything else (masks, memory tokens, Transformer-XL memories, the KV cache,
the return convention) is here once.

Shape letters: b batch, n sequence, p prepended length, d width.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod

import torch
from torch import Tensor, nn

from ..finite_inputs import zero_masked_and_check_finite
from ..generation.interface import DecodingSpec
from ..generation.kv_cache import resolve_cache, sequence_offset
from ..hub.mixin import PretrainedMixin
from ..layers.validation import check_mask
from ..options import WrapperOptions
from .memory_tokens import build_memory_tokens, check_row_starts, run_layers
from .pooling import build_pooling
from .stem import SequenceStem, package_outputs


class SequenceWrapper(PretrainedMixin, nn.Module, metaclass=ABCMeta):
    """Base of ``TransformerWrapper`` and ``ContinuousTransformerWrapper``; not used directly."""

    def _build_trunk(self, emb_dim: int, max_seq_len: int, attn_layers, options: WrapperOptions):
        """The stem, memory tokens and recurrence settings around ``attn_layers``."""
        dim = attn_layers.dim
        self.max_seq_len = max_seq_len
        self.stem = SequenceStem(emb_dim, dim, max_seq_len, options)
        self.num_memory_tokens = options.num_memory_tokens
        self.memory_tokens = build_memory_tokens(options.num_memory_tokens, dim)
        self.max_mem_len, self.shift_mem_down = options.max_mem_len, options.shift_mem_down
        if options.max_mem_len > 0 and attn_layers.config.blocks.reversible:
            raise ValueError(
                "'reversible' and 'max_mem_len' cannot be combined: Transformer-XL memories are "
                "made of every block's input, which a reversible stack does not keep"
            )
        self.attn_layers = attn_layers
        self.pooling = build_pooling(dim, options, attn_layers)  # use_cls_token, average_pool

    def decoding_spec(self) -> DecodingSpec:
        """What generation needs to know about this model (see
        :class:`~x_transformers.generation.interface.DecodingSpec`)."""
        memory_tokens = self.memory_tokens
        return DecodingSpec(
            max_seq_len=self.max_seq_len,
            causal=self.attn_layers.causal,
            absolute_positions=self.stem.pos_emb is not None,
            num_memory_tokens=0 if memory_tokens is None else memory_tokens.num_memory_tokens,
            max_mem_len=max(self.max_mem_len, 0),
            kv_cache_blockers=tuple(self.attn_layers.kv_cache_blockers),
        )

    @abstractmethod
    def check_inputs(self, x: Tensor) -> None:
        """Raise a clear error when ``x`` is not what the wrapper takes."""

    @abstractmethod
    def embed(self, x: Tensor) -> Tensor:
        """Inputs -> (b, n, emb_dim) vectors."""

    @abstractmethod
    def head(self, h: Tensor) -> Tensor:
        """Final hidden states (b, n, d) -> outputs."""

    def add_token_types(self, embedded: Tensor, x: Tensor, token_type_ids: Tensor | None):
        """Token-type (segment) embeddings, ``num_token_types`` of ``TransformerWrapper``."""
        if token_type_ids is not None:
            raise ValueError(f"'token_type_ids' needs a {type(self).__name__} with num_token_types")
        return embedded

    def forward(
        self,
        x: Tensor,
        return_embeddings: bool = False,
        return_intermediates: bool = False,
        return_attn: bool = False,
        mask: Tensor | None = None,
        prepend_embeds: Tensor | None = None,
        mems: list[Tensor] | None = None,
        return_mems: bool = False,
        cache=None,
        seq_start_pos: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        return_logits_and_embeddings: bool = False,
        **layer_inputs,
    ):
        """x (b, n) tokens or (b, n, dim_in) vectors -> the head's output (b, n, ...), or the
        final hidden states (b, n, d) with ``return_embeddings=True``. ``mask`` (b, n) is a
        key-padding mask, True = keep; ``prepend_embeds`` (b, p, d) go before the sequence;
        ``layer_inputs`` (``context``, ``context_mask``, ``attn_mask``, ``self_attn_kv_mask``,
        ``prefix_attn_len``, ``pos``) go to the layer stack; ``pos`` (n,) or (b, n) custom
        positions also index the absolute position embeddings;
        ``token_type_ids`` (b, n) are segment ids (``num_token_types``).

        With ``use_cls_token`` / ``average_pool_embed`` the output is pooled: (b, d) embeddings,
        (b, ...) from the head. ``return_logits_and_embeddings=True`` gives ``out`` = (the
        head's output, the final hidden states).

        Extra outputs: ``return_attn=True`` gives ``(out, attention maps)``;
        ``return_mems=True`` gives ``(out, mems)`` with the Transformer-XL memories to pass as
        ``mems=`` to the next segment; ``return_intermediates=True`` gives ``(out,
        intermediates)``, which also serve as a KV cache: ``model(x_next, cache=intermediates)``
        continues with only the new positions. ``seq_start_pos`` (b,) is each row's first real
        position in a left-padded batch (every position scheme and the memory tokens start there).
        Real-valued inputs are zeroed where ``mask`` is False and must be finite where it is True
        (``ValueError``; an asynchronous device assertion off the CPU)."""
        self.check_inputs(x)
        check_mask(x, mask, "mask")
        x = zero_masked_and_check_finite(x, mask, "x")  # real-valued inputs; token ids pass
        uncachable = ("attn_mask", "pos", "self_attn_kv_mask")  # inputs a cache cannot carry on
        given = [name for name in uncachable if layer_inputs.get(name) is not None]
        record = return_intermediates and mems is None and not given
        cache = resolve_cache(cache, self.attn_layers, record=record, prepend_embeds=prepend_embeds)
        seq_start_pos = check_row_starts(seq_start_pos, x, cache)  # (b,) or None
        offset = sequence_offset(cache, seq_start_pos)
        check_learned_positions(self.stem.pos_emb, offset, x.shape[1])
        embedded = self.add_token_types(self.embed(x), x, token_type_ids)
        h, mask = self.stem(
            embedded, mask, prepend_embeds, offset=offset, pos=layer_inputs.get("pos")
        )
        if self.pooling is not None:  # the class token first; no KV cache
            h, mask = self.pooling.prepend(h, mask, cache)
        past = {"mems": mems, "return_mems": return_mems, "cache": cache}
        past["seq_start_pos"] = seq_start_pos  # positions and memory tokens per row
        h, intermediates = run_layers(
            self, h, mask, x.shape[1], return_attn=return_attn, **past, **layer_inputs
        )
        if self.pooling is not None:  # (b, 1 + p + n, d) -> (b, d)
            h = self.pooling.pool(h, mask, x.shape[1])
        out = h if return_embeddings else self.head(h)
        if return_logits_and_embeddings:
            out = (self.head(h), h)
        return package_outputs(out, intermediates, return_intermediates, return_attn, return_mems)


def check_learned_positions(pos_emb, offset, seq_len: int) -> None:
    """A tensor ``offset`` (static cache, left-padded rows) past the learned absolute positions
    gets the same clear error as an int one, not an index error: checked on CPU, asserted on
    the device elsewhere (no host sync), skipped while compiling."""
    max_seq_len = getattr(pos_emb, "max_seq_len", None)
    if max_seq_len is None or not isinstance(offset, Tensor) or torch.compiler.is_compiling():
        return
    end = offset.max() + seq_len
    message = (
        f"sequence longer than max_seq_len={max_seq_len} of the learned absolute positions "
        "(cached decoding went past it); shorten it, raise max_seq_len, or use a relative "
        "scheme (e.g. rotary_pos_emb, alibi_pos_bias) with use_abs_pos_emb=False"
    )
    if end.device.type != "cpu":
        torch._assert_async(end <= max_seq_len, message)
        return
    if int(end) > max_seq_len:
        raise ValueError(f"{message}; got length {int(end)}")
