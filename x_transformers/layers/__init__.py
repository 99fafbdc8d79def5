"""Layer stacks: layout, residual blocks, and the stacks (``Encoder``, ``Decoder``,
``PrefixDecoder``, ``CrossAttender``)."""

from .attention_layers import AttentionLayers, CrossAttender, Decoder, Encoder, PrefixDecoder
from .intermediates import LayerIntermediates
from .layout import plan_layers

__all__ = [
    "AttentionLayers",
    "CrossAttender",
    "Decoder",
    "Encoder",
    "LayerIntermediates",
    "PrefixDecoder",
    "plan_layers",
]
