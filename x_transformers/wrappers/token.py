"""``TransformerWrapper``: tokens in, logits (or embeddings) out.

Shape letters: b batch, n sequence, d width, v vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layers import AttentionLayers
from ..layers.validation import check_mask
from ..options import parse_wrapper_kwargs
from .memory_tokens import build_memory_tokens, embed_and_run_layers
from .stem import SequenceStem, init_token_embedding, package_outputs


def check_attn_layers(attn_layers, where: str) -> None:
    if not isinstance(attn_layers, AttentionLayers):
        raise TypeError(
            f"{where}: 'attn_layers' must be an Encoder, Decoder or AttentionLayers, "
            f"got {type(attn_layers).__name__}"
        )


def check_token_ids(x: Tensor, num_tokens: int) -> None:
    if x.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"token ids must be an integer tensor, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"token ids must have shape (batch, seq_len), got {tuple(x.shape)}")
    if torch.compiler.is_compiling() or x.device.type == "meta" or x.numel() == 0:
        return
    expected = f"token ids must lie in [0, {num_tokens}) for num_tokens={num_tokens}"
    if x.device.type != "cpu":
        # no host synchronisation on accelerators: the assertion fails with the next kernel
        torch._assert_async(((x >= 0) & (x < num_tokens)).all(), expected)
        return
    low, high = x.aminmax()
    low, high = int(low), int(high)
    if low < 0 or high >= num_tokens:
        raise ValueError(f"{expected}; got values in [{low}, {high}]")


class TransformerWrapper(nn.Module):
    """Token embedding + positions + a layer stack + a logits head (GPT with a ``Decoder``, BERT
    with an ``Encoder``).

    Args:
        num_tokens: vocabulary size.
        max_seq_len: longest sequence the learned absolute positions cover.
        attn_layers: the layer stack (``Encoder``, ``Decoder`` or ``AttentionLayers``).
        **kwargs: wrapper keywords (``emb_dropout``, ``tie_embedding``, ``use_abs_pos_emb``,
            ``emb_dim``, ``logits_dim``, ...); see :class:`x_transformers.options.WrapperOptions`.
    """

    def __init__(self, *, num_tokens: int, max_seq_len: int, attn_layers, **kwargs):
        super().__init__()
        check_attn_layers(attn_layers, "TransformerWrapper")
        options = parse_wrapper_kwargs(kwargs, "TransformerWrapper", ("num_tokens", "max_seq_len"))
        self.options = options
        self.num_tokens, self.max_seq_len = num_tokens, max_seq_len
        dim = attn_layers.dim
        emb_dim = options.emb_dim or dim
        self.token_emb = nn.Embedding(num_tokens, emb_dim)
        init_token_embedding(self.token_emb, options)  # small init with l2norm_embed
        self.stem = SequenceStem(emb_dim, dim, max_seq_len, options)
        # memory: memory tokens, Transformer-XL memories (x_transformers.wrappers.memory_tokens)
        self.num_memory_tokens = options.num_memory_tokens
        self.memory_tokens = build_memory_tokens(options.num_memory_tokens, dim)
        self.max_mem_len, self.shift_mem_down = options.max_mem_len, options.shift_mem_down
        self.attn_layers = attn_layers
        if options.tie_embedding and emb_dim != dim:
            raise ValueError(f"tie_embedding needs emb_dim == dim, got {emb_dim} and {dim}")
        logits_dim = options.logits_dim or num_tokens
        if options.tie_embedding and logits_dim != num_tokens:
            raise ValueError("tie_embedding needs logits_dim == num_tokens")
        self.to_logits = (
            None
            if options.tie_embedding or options.return_only_embed
            else nn.Linear(dim, logits_dim, bias=False)
        )

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
        **layer_inputs,
    ):
        """x (b, n) token ids -> logits (b, n, v), or embeddings (b, n, d) with
        ``return_embeddings=True``. ``layer_inputs`` (``context``, ``context_mask``, ``attn_mask``)
        go to the layer stack. ``return_attn=True`` also returns the attention maps.

        Memory and generation: ``mems`` / ``return_mems=True`` give and return Transformer-XL
        memories (``logits, mems = model(x, return_mems=True)``); ``cache`` continues from a KV
        cache, e.g. the intermediates of ``logits, cache = model(x, return_intermediates=True)``
        (x then holds only the new tokens); ``seq_start_pos`` (b,) is each row's first real token
        of a left-padded batch (absolute positions start there)."""
        check_token_ids(x, self.num_tokens)
        check_mask(x, mask, "mask")
        h, intermediates = embed_and_run_layers(
            self,
            self.token_emb(x),
            mask=mask,
            prepend_embeds=prepend_embeds,
            mems=mems,
            return_mems=return_mems,
            cache=cache,
            seq_start_pos=seq_start_pos,
            return_intermediates=return_intermediates,
            return_attn=return_attn,
            layer_inputs=layer_inputs,
        )
        out = h if return_embeddings or self.options.return_only_embed else self.logits(h)
        return package_outputs(out, intermediates, return_intermediates, return_attn, return_mems)

    def logits(self, embeddings: Tensor) -> Tensor:
        if self.to_logits is None:
            return embeddings @ self.token_emb.weight.t()
        return self.to_logits(embeddings)
