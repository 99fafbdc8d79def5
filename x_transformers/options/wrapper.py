"""Options of the model wrappers (embedding, memory tokens, recurrence)."""

from __future__ import annotations

from dataclasses import dataclass

from .spec import option


@dataclass(frozen=True)
class WrapperOptions:
    emb_dim: int | None = option(None, "embedding width (projected to the layers' dim)")
    emb_dropout: float = option(0.0, "dropout after the embedding")
    use_abs_pos_emb: bool = option(True, "learned absolute positions", "2203.16634")
    sinusoidal_pos_emb: bool = option(False, "fixed sinusoidal positions", "1706.03762", False)
    l2norm_embed: bool = option(False, "l2-normalised embeddings", None, False)
    post_emb_norm: bool = option(False, "norm after the embedding", None, False)
    tie_embedding: bool = option(False, "logits through the token embedding")
    logits_dim: int | None = option(None, "width of the logits (default num_tokens)")
    return_only_embed: bool = option(False, "no logits head: forward returns embeddings")
    num_memory_tokens: int = option(0, "memory / register tokens", "2006.11527", False)
    max_mem_len: int = option(0, "Transformer-XL memory length", "1901.02860", False)
    shift_mem_down: int = option(0, "feed memories of layer n to layer n-1", "2012.15688", False)
