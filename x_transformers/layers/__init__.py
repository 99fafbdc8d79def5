"""Layer stacks: layout, residual blocks, and ``Encoder`` / ``Decoder`` / ``CrossAttender``."""

from .attention_layers import AttentionLayers, CrossAttender, Decoder, Encoder
from .intermediates import LayerIntermediates
from .layout import plan_layers

__all__ = [
    "AttentionLayers",
    "CrossAttender",
    "Decoder",
    "Encoder",
    "LayerIntermediates",
    "plan_layers",
]
