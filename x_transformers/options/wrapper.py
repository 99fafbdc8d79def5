"""Options of the model wrappers (embedding, memory tokens, recurrence)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

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
        for name in ("num_memory_tokens", "max_mem_len", "shift_mem_down"):
            check_size(getattr(self, name), name, minimum=0)
        if not 0.0 <= self.emb_dropout < 1.0:
            raise ValueError(f"'emb_dropout' must be in [0, 1), got {self.emb_dropout}")


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
