"""Options of one feedforward block (keywords with the ``ff_`` prefix)."""

from __future__ import annotations

from dataclasses import dataclass

from .spec import option

# the activations ``ff_activation`` names (x_transformers.feedforward.ACTIVATIONS builds them)
ACTIVATION_NAMES = ("gelu", "gelu_tanh", "relu", "silu", "relu_squared")


@dataclass(frozen=True)
class FeedForwardOptions:
    # hidden width = int(mult * dim); with glu the input projection is twice as wide
    mult: float = option(4, "hidden width multiplier")
    # an exact hidden width (Llama's intermediate_size, BERT's intermediate_size), instead of mult
    inner_dim: int | None = option(None, "exact hidden width (instead of ff_mult)")
    # dropout after the activation (and its norm), before the output projection
    dropout: float = option(0.0, "dropout inside the feedforward")
    # gated linear unit ("GLU Variants Improve Transformer"): (x W) * act(x V)
    glu: bool = option(False, "GLU feedforward", "2002.05202")
    # the activation by name; GPT-2 and T5's gated-gelu use the tanh approximation of gelu
    activation: str | None = option(
        None, "activation by name: gelu (default), gelu_tanh, relu, silu, relu_squared"
    )
    # SiLU / swish activation (with glu: SwiGLU); the same as ff_activation='silu'
    swish: bool = option(False, "swish activation", "2002.05202")
    no_bias: bool = option(False, "feedforward without biases")
    # squared ReLU ("Primer"); the same as ff_activation='relu_squared'
    relu_squared: bool = option(False, "ReLU squared activation", "2109.08668")
    # a LayerNorm after the activation (NormFormer)
    post_act_ln: bool = option(False, "LayerNorm after the activation", "2110.09456")
    # dropout on the block's output, before the residual addition
    sublayer_dropout: float = option(0.0, "dropout on the feedforward branch output")

    def __post_init__(self):
        if self.mult <= 0:
            raise ValueError(f"'ff_mult' must be > 0, got {self.mult}")
        if self.inner_dim is not None and self.inner_dim < 1:
            raise ValueError(f"'ff_inner_dim' must be >= 1, got {self.inner_dim}")
        if self.inner_dim is not None and self.mult != 4:
            raise ValueError(
                f"'ff_inner_dim'={self.inner_dim} and 'ff_mult'={self.mult} cannot be combined: "
                "each sets the hidden width"
            )
        if self.activation is not None and self.activation not in ACTIVATION_NAMES:
            raise ValueError(
                f"'ff_activation' must be one of {', '.join(ACTIVATION_NAMES)}, "
                f"got {self.activation!r}"
            )
        chosen = [
            name
            for name, on in (
                ("ff_activation", self.activation is not None),
                ("ff_swish", self.swish),
                ("ff_relu_squared", self.relu_squared),
            )
            if on
        ]
        if len(chosen) > 1:
            raise ValueError(
                f"{' and '.join(repr(n) for n in chosen)} cannot be combined: each picks the "
                "activation"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"'ff_dropout' must lie in [0, 1), got {self.dropout}")

    @property
    def activation_name(self) -> str:
        """The activation these options pick, whichever keyword picked it."""
        if self.swish:
            return "silu"
        if self.relu_squared:
            return "relu_squared"
        return self.activation or "gelu"
