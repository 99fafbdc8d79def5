"""x-transformers: a concise but fully-featured transformer library.

The layer stacks are imported eagerly; the wrappers and the generation wrappers on first use
(PEP 562), so ``import x_transformers.layers`` loads the model code without the decoding code
that builds on it.
"""

from __future__ import annotations

import importlib

from .attention import Attend, Attention
from .feedforward import FeedForward
from .layers import AttentionLayers, CrossAttender, Decoder, Encoder, PrefixDecoder
from .norms import RMSNorm, ScaleNorm

_LAZY = {
    "AutoregressiveWrapper": ".generation",
    "ContinuousAutoregressiveWrapper": ".generation",
    "NonAutoregressiveWrapper": ".generation",
    "XLAutoregressiveWrapper": ".generation",
    "ContinuousTransformerWrapper": ".wrappers",
    "TransformerWrapper": ".wrappers",
    "ViTransformerWrapper": ".wrappers",
    "XTransformer": ".wrappers",
}

__all__ = [
    "Attend",
    "Attention",
    "AttentionLayers",
    "AutoregressiveWrapper",
    "ContinuousAutoregressiveWrapper",
    "ContinuousTransformerWrapper",
    "CrossAttender",
    "Decoder",
    "Encoder",
    "FeedForward",
    "NonAutoregressiveWrapper",
    "PrefixDecoder",
    "RMSNorm",
    "ScaleNorm",
    "TransformerWrapper",
    "ViTransformerWrapper",
    "XLAutoregressiveWrapper",
    "XTransformer",
]

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'x_transformers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
