"""Model wrappers around a layer stack."""

from .continuous import ContinuousTransformerWrapper
from .encoder_decoder import XTransformer
from .token import TransformerWrapper
from .vit import ViTransformerWrapper

__all__ = [
    "ContinuousTransformerWrapper",
    "TransformerWrapper",
    "ViTransformerWrapper",
    "XTransformer",
]
