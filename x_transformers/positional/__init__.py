"""Positional schemes.

Wrapper level (added to the embeddings): learned absolute positions (:mod:`.absolute`) and fixed
sinusoids (:mod:`.sinusoidal`). Layer level (computed once per stack forward by the
:class:`PositionProvider` of :mod:`.provider`, built by :func:`build_positions`): rotary with xPos
(:mod:`.rotary`), T5 buckets (:mod:`.t5`), dynamic bias (:mod:`.dynamic`), ALiBi (:mod:`.alibi`)
and position-infused attention (:mod:`.infused`), all from an explicit :class:`PositionSpan`.
"""

from .absolute import AbsolutePositionalEmbedding, build_absolute_positions, embedding_init_std
from .alibi import AlibiPositionalBias, alibi_slopes
from .builder import build_positions
from .dynamic import DynamicPositionBias
from .infused import Infusion, PositionInfusion
from .provider import PositionProvider, Positions
from .rotary import RotaryEmbedding, Rotation, apply_rotation
from .sinusoidal import SinusoidalPositionalEmbedding, sinusoids
from .span import PositionSpan
from .t5 import T5RelativePositionBias, t5_relative_bucket

__all__ = [
    "AbsolutePositionalEmbedding",
    "AlibiPositionalBias",
    "DynamicPositionBias",
    "Infusion",
    "PositionInfusion",
    "PositionProvider",
    "PositionSpan",
    "Positions",
    "RotaryEmbedding",
    "Rotation",
    "SinusoidalPositionalEmbedding",
    "T5RelativePositionBias",
    "alibi_slopes",
    "apply_rotation",
    "build_absolute_positions",
    "build_positions",
    "embedding_init_std",
    "sinusoids",
    "t5_relative_bucket",
]
