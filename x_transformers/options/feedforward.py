"""Options of one feedforward block (keywords with the ``ff_`` prefix)."""

from __future__ import annotations

from dataclasses import dataclass

from .spec import option


@dataclass(frozen=True)
class FeedForwardOptions:
    # hidden width = mult * dim
    mult: float = option(4, "hidden width multiplier")
    dropout: float = option(0.0, "dropout inside the feedforward")
    # gated linear unit ("GLU Variants Improve Transformer")
    glu: bool = option(False, "GLU feedforward", "2002.05202", False)
    # SiLU / swish activation (with glu: SwiGLU)
    swish: bool = option(False, "swish activation", "2002.05202", False)
    no_bias: bool = option(False, "feedforward without biases", None, False)
    # squared ReLU ("Primer")
    relu_squared: bool = option(False, "ReLU squared activation", "2109.08668", False)
    # a norm after the activation (NormFormer)
    post_act_ln: bool = option(False, "LayerNorm after the activation", "2110.09456", False)
