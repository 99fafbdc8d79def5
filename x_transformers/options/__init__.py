"""Keyword routing and typed option groups (see :mod:`.routing`)."""

from .attention import AttentionOptions
from .blocks import BlockOptions
from .feedforward import FeedForwardOptions
from .positions import PositionOptions
from .routing import (
    LEGACY_ALIASES,
    LayerConfig,
    layer_keyword_names,
    parse_layer_kwargs,
    parse_wrapper_kwargs,
    unknown_keyword_error,
    wrapper_keyword_names,
)
from .wrapper import WrapperOptions

__all__ = [
    "AttentionOptions",
    "BlockOptions",
    "FeedForwardOptions",
    "LEGACY_ALIASES",
    "LayerConfig",
    "PositionOptions",
    "WrapperOptions",
    "layer_keyword_names",
    "parse_layer_kwargs",
    "parse_wrapper_kwargs",
    "unknown_keyword_error",
    "wrapper_keyword_names",
]
