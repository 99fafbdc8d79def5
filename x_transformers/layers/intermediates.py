"""What a forward can return besides its output."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from ..attention import AttentionIntermediates


@dataclass
class LayerIntermediates:
    """Per-block inputs (``hiddens``) and attention intermediates of one stack forward."""

    hiddens: list[Tensor] = field(default_factory=list)
    attn_intermediates: list[AttentionIntermediates] = field(default_factory=list)

    @property
    def attn_maps(self) -> list[Tensor]:
        """Post-softmax attention maps (b, h, i, j) of the blocks that computed them."""
        return [
            inter.post_softmax_attn
            for inter in self.attn_intermediates
            if inter.post_softmax_attn is not None
        ]
