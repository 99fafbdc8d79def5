"""Options of the model wrappers (embedding, memory tokens, recurrence)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from .feedforward import ACTIVATION_NAMES
from .spec import option


@dataclass(frozen=True)
class WrapperOptions:
    emb_dim: int | None = option(None, "embedding width (projected to the layers' dim)")
    emb_dropout: float = option(0.0, "dropout after the embedding")
    # --- absolute positions and embedding norms (x_transformers.positional, wrappers/stem.py) ---
    use_abs_pos_emb: bool = option(
        True, "absolute positions (learned by default); False turns them off", "2203.16634"
    )
    sinusoidal_pos_emb: bool = option(
        False, "fixed sinusoidal absolute positions instead of learned ones", "1706.03762"
    )
    l2norm_embed: bool = option(
        False, "l2-normalised token and position embeddings, small init (fixnorm)", "1710.01329"
    )
    post_emb_norm: bool = option(False, "LayerNorm right after the summed embeddings")
    tie_embedding: bool = option(False, "logits through the token embedding")
    logits_dim: int | None = option(None, "width of the logits (default num_tokens)")
    return_only_embed: bool = option(False, "no logits head: forward returns embeddings")
    # --- reference families (x_transformers.wrappers.heads; BERT, T5) --------------------------
    # segment embeddings added to the token embeddings; forward(..., token_type_ids=(b, n))
    num_token_types: int = option(0, "token-type (segment) embeddings, forward(token_type_ids=)")
    # BERT's masked-LM head: dense -> activation (by name, as ff_activation) -> LayerNorm
    logits_transform: str | None = option(
        None, "dense, activation (this name) and LayerNorm before the logits (BERT MLM head)"
    )
    logits_bias: bool = option(False, "a bias on the logits (also when tied)")
    # T5 with tied embeddings multiplies the final hidden states by d_model ** -0.5
    logits_scale: float | None = option(None, "multiply the final hidden states before the logits")
    # epsilon of the wrapper's LayerNorms; BERT uses 1e-12
    emb_norm_eps: float | None = option(
        None, "epsilon of post_emb_norm and the logits transform's norm (default 1e-5)"
    )
    # dense + tanh on the first position's final hidden state (BERT / ViT pooler)
    pooler: bool = option(False, "pooler: dense + tanh on the first token, model.pool(hidden)")
    # --- pooling and heads (x_transformers.wrappers.pooling; issue 15) ------------------------
    # forward gives one vector per row: return_embeddings (b, d), the head (b, logits_dim)
    use_cls_token: bool = option(
        False, "learned class token in front; output pooled from it (b, ...)", "1810.04805"
    )
    average_pool_embed: bool = option(
        False, "output pooled by the masked mean of the final embeddings (b, ...)"
    )
    # ContinuousTransformerWrapper: outputs (..., dim_out, 2) = (mean, log-variance)
    probabilistic: bool = option(
        False, "continuous: mean and log-variance heads, Gaussian NLL loss and sampling"
    )
    # --- memory and recurrence (x_transformers.wrappers.memory_tokens, generation.recurrence) ---
    num_memory_tokens: int = option(
        0, "learned memory tokens through all layers, stripped from the output", "2006.11527"
    )
    max_mem_len: int = option(
        0, "Transformer-XL: hidden states kept per layer for the next segment", "1901.02860"
    )
    shift_mem_down: int = option(
        0, "enhanced recurrence: memories of layer n + s feed layer n", "2012.15688"
    )

    def __post_init__(self):
        for name in ("emb_dim", "logits_dim"):  # None is the default; 0 is not
            value = getattr(self, name)
            if value is not None:
                check_size(value, name, minimum=1)
        for name in ("num_memory_tokens", "max_mem_len", "shift_mem_down", "num_token_types"):
            check_size(getattr(self, name), name, minimum=0)
        if not 0.0 <= self.emb_dropout < 1.0:
            raise ValueError(f"'emb_dropout' must be in [0, 1), got {self.emb_dropout}")
        _check_family_options(self)
        if self.use_cls_token and self.average_pool_embed:
            raise ValueError(
                "'use_cls_token' and 'average_pool_embed' cannot be combined: each pools the output"
            )


def _check_family_options(o: WrapperOptions) -> None:
    """The keywords of the reference families' heads and embeddings (wrappers/heads.py)."""
    if o.emb_norm_eps is not None:
        if not o.emb_norm_eps > 0:
            raise ValueError(f"'emb_norm_eps' must be > 0, got {o.emb_norm_eps}")
        if not (o.post_emb_norm or o.logits_transform):
            raise ValueError(
                "'emb_norm_eps' needs a wrapper norm: 'post_emb_norm' or 'logits_transform'"
            )
    if o.logits_transform is not None and o.logits_transform not in ACTIVATION_NAMES:
        raise ValueError(
            f"'logits_transform' must be one of {', '.join(ACTIVATION_NAMES)}, "
            f"got {o.logits_transform!r}"
        )
    if o.logits_scale is not None and not o.logits_scale > 0:
        raise ValueError(f"'logits_scale' must be > 0, got {o.logits_scale}")
    if o.return_only_embed:
        for name in ("logits_transform", "logits_bias", "logits_scale"):
            if getattr(o, name) not in (None, False):
                raise ValueError(f"'{name}' acts on the logits head; 'return_only_embed' has none")


def check_size(value, name: str, minimum: int = 1) -> int:
    """An int (not a bool, not a float) of at least ``minimum``: TypeError / ValueError naming
    ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"'{name}' must be an int >= {minimum}, got {value!r} ({type(value).__name__})"
        )
    if value < minimum:
        raise ValueError(f"'{name}' must be >= {minimum}, got {value}")
    return int(value)
