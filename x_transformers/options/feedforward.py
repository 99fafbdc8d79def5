"""Options of one feedforward block (keywords with the ``ff_`` prefix)."""

from __future__ import annotations

from dataclasses import dataclass

from .spec import option


@dataclass(frozen=True)
class FeedForwardOptions:
    # hidden width = int(mult * dim); with glu the input projection is twice as wide
    mult: float = option(4, "hidden width multiplier")
    # dropout after the activation (and its norm), before the output projection
    dropout: float = option(0.0, "dropout inside the feedforward")
    # gated linear unit ("GLU Variants Improve Transformer"): (x W) * act(x V)
    glu: bool = option(False, "GLU feedforward", "2002.05202")
    # SiLU / swish activation (with glu: SwiGLU)
    swish: bool = option(False, "swish activation", "2002.05202")
    no_bias: bool = option(False, "feedforward without biases")
    # squared ReLU ("Primer")
    relu_squared: bool = option(False, "ReLU squared activation", "2109.08668")
    # a LayerNorm after the activation (NormFormer)
    post_act_ln: bool = option(False, "LayerNorm after the activation", "2110.09456")
    # dropout on the block's output, before the residual addition
    sublayer_dropout: float = option(0.0, "dropout on the feedforward branch output")

    def __post_init__(self):
        if self.mult <= 0:
            raise ValueError(f"'ff_mult' must be > 0, got {self.mult}")
        if self.swish and self.relu_squared:
            raise ValueError(
                "'ff_swish' and 'ff_relu_squared' cannot be combined: each picks the activation"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"'ff_dropout' must lie in [0, 1), got {self.dropout}")
