"""x-transformers: a concise but fully-featured transformer library."""

from .generation import (
    AutoregressiveWrapper,
    ContinuousAutoregressiveWrapper,
    XLAutoregressiveWrapper,
)
from .layers import AttentionLayers, CrossAttender, Decoder, Encoder
from .norms import RMSNorm, ScaleNorm
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
    "RMSNorm",
    "ScaleNorm",
    "TransformerWrapper",
    "ViTransformerWrapper",
    "XLAutoregressiveWrapper",
    "XTransformer",
]

__version__ = "0.1.0"
