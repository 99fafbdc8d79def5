"""What a forward can return besides its output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from ..attention import AttentionIntermediates, ForwardState


@dataclass
class LayerIntermediates:
    """Per-block inputs (``hiddens``) and attention intermediates of one stack forward.

    A reversible stack (``reversible=True``) gives the stream each block's branch reads as
    ``hiddens`` without gradients, and ``None`` with them: its training forward keeps no
    block input (they are rebuilt in the backward pass)."""

    hiddens: list[Tensor] = field(default_factory=list)
    attn_intermediates: list[AttentionIntermediates] = field(default_factory=list)
    # input of every self-attention block (b, n, d): what Transformer-XL memories are made of
    self_attention_inputs: list[Tensor] = field(default_factory=list)
    # the KV cache this forward read and extended (x_transformers.generation.kv_cache), if any
    cache: Any = None
    # Transformer-XL memories for the next segment (set by the wrappers with return_mems)
    mems: list[Tensor] | None = None
    # what the blocks handed to later blocks, keyed by feature (residual scores, first values)
    state: ForwardState | None = None

    @property
    def attn_maps(self) -> list[Tensor]:
        """Post-softmax attention maps (b, h, i, j) of the blocks that computed them."""
        return [
            inter.post_softmax_attn
            for inter in self.attn_intermediates
            if inter.post_softmax_attn is not None
        ]
