"""``TransformerWrapper``: tokens in, logits (or embeddings) out.

Shape letters: b batch, n sequence, d width, v vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..backend import value_range
from ..layers import AttentionLayers
from ..options import parse_wrapper_kwargs
from ..options.wrapper import check_size
from ..weight_layout import linear
from .heads import Pooler, build_logits_transform, check_token_type_ids, project_logits
from .sequence import SequenceWrapper
from .stem import init_token_embedding


def check_attn_layers(attn_layers, where: str) -> None:
    if not isinstance(attn_layers, AttentionLayers):
        raise TypeError(
            f"{where}: 'attn_layers' must be an Encoder, Decoder or AttentionLayers, "
            f"got {type(attn_layers).__name__}"
        )


# devices whose token ids are range-checked on the host (a ValueError right away); elsewhere the
# check is an asynchronous device assertion with no host synchronisation (tests force that branch
# on CPU by emptying this tuple: tests/unit/test_host_syncs.py)
HOST_CHECKED_DEVICES = ("cpu",)


def check_token_ids(x: Tensor, num_tokens: int) -> None:
    if x.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"token ids must be an integer tensor, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"token ids must have shape (batch, seq_len), got {tuple(x.shape)}")
    if torch.compiler.is_compiling() or x.device.type == "meta" or x.numel() == 0:
        return
    expected = f"token ids must lie in [0, {num_tokens}) for num_tokens={num_tokens}"
    if x.device.type not in HOST_CHECKED_DEVICES:
        # no host synchronisation on accelerators: the assertion fails with the next kernel
        torch._assert_async(((x >= 0) & (x < num_tokens)).all(), expected)
        return
    low, high = value_range(x)
    if low < 0 or high >= num_tokens:
        raise ValueError(f"{expected}; got values in [{low}, {high}]")


def check_custom_modules(token_emb, to_logits, options) -> None:
    """``token_emb`` / ``to_logits`` modules, and the keywords that would define the same part."""
    for name, module in (("token_emb", token_emb), ("to_logits", to_logits)):
        if module is not None and not isinstance(module, nn.Module):
            raise TypeError(f"'{name}' must be an nn.Module, got {type(module).__name__}")
    if token_emb is not None and options.tie_embedding:
        raise ValueError("'token_emb' and 'tie_embedding' cannot be combined: tying needs ours")
    if to_logits is None:
        return
    for name in ("tie_embedding", "return_only_embed", "logits_dim", "logits_bias"):
        if getattr(options, name) not in (None, False):
            raise ValueError(
                f"'to_logits' and '{name}' cannot be combined: both define the logits head"
            )


class TransformerWrapper(SequenceWrapper):
    """Token embedding + positions + a layer stack + a logits head (GPT with a ``Decoder``, BERT
    with an ``Encoder``). The forward is :meth:`SequenceWrapper.forward`: ``model(x)`` with x
    (b, n) token ids gives logits (b, n, num_tokens); ``return_embeddings=True`` the final hidden
    states; ``mems``/``return_mems`` Transformer-XL recurrence; ``return_intermediates=True`` a
    KV cache for ``model(x_next, cache=...)``.

    Args:
        num_tokens: vocabulary size.
        max_seq_len: longest sequence the learned absolute positions cover.
        attn_layers: the layer stack (``Encoder``, ``Decoder`` or ``AttentionLayers``).
        token_emb: a module replacing the token embedding: (b, n) ids -> (b, n, emb_dim)
            (``emb_dim`` or the stack's dim); it is used as given (no initialisation).
        to_logits: a module replacing the logits projection: final hidden states (b, n, d), after
            ``logits_transform`` / ``logits_scale``, -> the output (its width is its own).
            Models with either module cannot be saved with ``save_pretrained`` (config.json
            holds no modules).
        **kwargs: wrapper keywords (``emb_dropout``, ``tie_embedding``, ``use_abs_pos_emb``,
            ``emb_dim``, ``logits_dim``, ...); see :class:`x_transformers.options.WrapperOptions`.
    """

    def __init__(
        self,
        *,
        num_tokens: int,
        max_seq_len: int,
        attn_layers,
        token_emb: nn.Module | None = None,
        to_logits: nn.Module | None = None,
        **kwargs,
    ):
        super().__init__()
        check_attn_layers(attn_layers, "TransformerWrapper")
        num_tokens = check_size(num_tokens, "num_tokens")
        max_seq_len = check_size(max_seq_len, "max_seq_len")
        options = parse_wrapper_kwargs(kwargs, "TransformerWrapper", ("num_tokens", "max_seq_len"))
        if options.probabilistic:
            raise TypeError("'probabilistic' applies to ContinuousTransformerWrapper, not tokens")
        check_custom_modules(token_emb, to_logits, options)
        self.options = options
        self.num_tokens = num_tokens
        dim = attn_layers.dim
        self.emb_dim = emb_dim = options.emb_dim or dim
        self.custom_to_logits = to_logits is not None
        if token_emb is None:
            token_emb = nn.Embedding(num_tokens, emb_dim)
            init_token_embedding(token_emb, options)  # small init with l2norm_embed
        self.token_emb = token_emb
        self._build_trunk(emb_dim, max_seq_len, attn_layers, options)
        if options.tie_embedding and emb_dim != dim:
            raise ValueError(f"tie_embedding needs emb_dim == dim, got {emb_dim} and {dim}")
        logits_dim = options.logits_dim or num_tokens
        if options.tie_embedding and logits_dim != num_tokens:
            raise ValueError("tie_embedding needs logits_dim == num_tokens")
        if to_logits is None and not (options.tie_embedding or options.return_only_embed):
            to_logits = linear(dim, logits_dim, bias=False)
        self.to_logits = to_logits
        self._build_family_parts(dim, emb_dim, logits_dim, options)

    def _build_family_parts(self, dim: int, emb_dim: int, logits_dim: int, options) -> None:
        """Token types, the logits transform and bias, the pooler (wrappers/heads.py)."""
        types = options.num_token_types
        self.token_type_emb = nn.Embedding(types, emb_dim) if types else None
        self.logits_transform = build_logits_transform(dim, options)
        with_bias = options.logits_bias and not options.return_only_embed
        self.logits_bias = nn.Parameter(torch.zeros(logits_dim)) if with_bias else None
        self.pooler = Pooler(dim) if options.pooler else None

    def check_inputs(self, x: Tensor) -> None:
        check_token_ids(x, self.num_tokens)

    def embed(self, x: Tensor) -> Tensor:
        embedded = self.token_emb(x)
        if embedded.shape[:2] != x.shape or embedded.shape[-1] != self.emb_dim:
            raise ValueError(
                f"'token_emb' must map ids {tuple(x.shape)} to vectors "
                f"{(*x.shape, self.emb_dim)} (emb_dim), got {tuple(embedded.shape)}"
            )
        return embedded

    def head(self, h: Tensor) -> Tensor:
        return h if self.options.return_only_embed else self.logits(h)

    def add_token_types(self, embedded: Tensor, x: Tensor, token_type_ids: Tensor | None):
        """Segment embeddings; without ``token_type_ids`` every token has type 0 (as in BERT)."""
        if self.token_type_emb is None:
            return super().add_token_types(embedded, x, token_type_ids)
        if token_type_ids is None:
            return embedded + self.token_type_emb.weight[0]
        check_token_type_ids(token_type_ids, x, self.token_type_emb.num_embeddings)
        return embedded + self.token_type_emb(token_type_ids)

    def logits(self, embeddings: Tensor) -> Tensor:
        if self.custom_to_logits:  # 'to_logits=': the transform and scale, then the module
            transform = self.logits_transform
            h = embeddings if transform is None else transform(embeddings)
            scale = self.options.logits_scale
            return self.to_logits(h if scale is None else h * scale)
        weight = self.token_emb.weight if self.to_logits is None else self.to_logits.weight
        scale = self.options.logits_scale
        return project_logits(embeddings, self.logits_transform, scale, weight, self.logits_bias)

    def pool(self, hidden: Tensor) -> Tensor:
        """The pooler (``pooler=True``) on final hidden states (b, n, d) -> (b, d)."""
        if self.pooler is None:
            raise ValueError("this model has no pooler; build it with pooler=True")
        return self.pooler(hidden)
