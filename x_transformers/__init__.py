"""x-transformers: a concise but fully-featured transformer library."""

from .generation import AutoregressiveWrapper, ContinuousAutoregressiveWrapper
from .layers import AttentionLayers, CrossAttender, Decoder, Encoder
from .wrappers import (
    ContinuousTransformerWrapper,
    TransformerWrapper,
    ViTransformerWrapper,
    XTransformer,
)

__all__ = [
    "AttentionLayers",
    "AutoregressiveWrapper",
    "ContinuousAutoregressiveWrapper",
    "ContinuousTransformerWrapper",
    "CrossAttender",
    "Decoder",
    "Encoder",
    "TransformerWrapper",
    "ViTransformerWrapper",
    "XTransformer",
]

__version__ = "0.1.0"
