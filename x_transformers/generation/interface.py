"""What decoding needs to know about a model, declared by the model.

A generation loop must know how far the model can see, whether its positions are tied to the
start of the window, how many positions it puts before the sequence, and how long its
Transformer-XL memories are. A model wrapper answers once, with a :class:`DecodingSpec` from its
``decoding_spec()`` method; the loops in this package read that record and nothing else of the
model's insides, so a wrapper may rearrange its modules freely.

:func:`cache_capacity` is the one rule for how many positions a preallocated cache holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class DecodingSpec:
    """The facts about a model that decoding reads.

    Attributes:
        max_seq_len: the longest window the model sees at once (its maximum context).
        causal: whether the layer stack is causal (a ``Decoder``); decoding needs it.
        absolute_positions: positions are absolute (learned or sinusoidal embeddings added to the
            input), so keys cached at one window position cannot be reused at another.
        num_memory_tokens: learned positions the model puts before the sequence (2006.11527).
        max_mem_len: Transformer-XL memory kept per layer (1901.02860); 0 when there is none.
        kv_cache_blockers: keywords of active features that cannot use a KV cache.
    """

    max_seq_len: int
    causal: bool
    absolute_positions: bool = False
    num_memory_tokens: int = 0
    max_mem_len: int = 0
    kv_cache_blockers: tuple[str, ...] = ()

    def __post_init__(self):
        if self.max_seq_len < 1:
            raise ValueError(f"max_seq_len must be >= 1, got {self.max_seq_len}")
        if self.num_memory_tokens < 0 or self.max_mem_len < 0:
            raise ValueError(
                f"num_memory_tokens and max_mem_len must be >= 0, got "
                f"{self.num_memory_tokens} and {self.max_mem_len}"
            )

    @property
    def sliding_blocker(self) -> str | None:
        """The keyword that ties positions to the start of the window, if any: then a cache
        cannot slide past ``max_seq_len`` and the window is recomputed instead."""
        if self.num_memory_tokens > 0:
            return "num_memory_tokens"
        if self.absolute_positions:
            return "use_abs_pos_emb"
        return None


def decoding_spec(net: nn.Module, where: str) -> DecodingSpec:
    """The :class:`DecodingSpec` that ``net`` declares; a clear error when it declares none."""
    declare = getattr(net, "decoding_spec", None)
    if not callable(declare):
        raise TypeError(
            f"{where} needs a model that declares decoding_spec() (TransformerWrapper or "
            f"ContinuousTransformerWrapper), got {type(net).__name__}"
        )
    spec = declare()
    if not isinstance(spec, DecodingSpec):
        raise TypeError(
            f"{type(net).__name__}.decoding_spec() must return a DecodingSpec, "
            f"got {type(spec).__name__}"
        )
    return spec


def cache_capacity(spec: DecodingSpec, prompt_length: int, num_new: int) -> int:
    """Positions a preallocated cache needs for ``num_new`` steps after a prompt of
    ``prompt_length``: the part of the sequence that fits the window, plus the memory tokens
    (cached with it). Beyond the window a static cache cannot slide; decoding recomputes."""
    return min(prompt_length + num_new, spec.max_seq_len) + spec.num_memory_tokens
