"""Position-wise feedforward ("Attention Is All You Need", 1706.03762) and its variants.

- GLU / SwiGLU / GEGLU ("GLU Variants Improve Transformer", Shazeer, 2002.05202);
- squared ReLU ("Primer", 2109.08668);
- a LayerNorm after the activation (NormFormer, 2110.09456);
- no biases (as in PaLM);
- the activation by name (``ff_activation``): exact or tanh-approximated gelu (GPT-2, T5's
  gated-gelu), relu, silu, squared relu; an exact hidden width (``ff_inner_dim``).

Shape letters: b batch, n sequence, d model width, h hidden width (``int(mult * d)`` or
``ff_inner_dim``).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from .options import FeedForwardOptions
from .weight_layout import linear


class ReluSquared(nn.Module):
    """``relu(x) ** 2`` (Primer, 2109.08668)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x).square()


class GLU(nn.Module):
    """Gated linear unit (2002.05202): ``(x W) * activation(x V)``.

    One projection ``d -> 2h`` gives the value and the gate, so the hidden width after gating is
    ``h`` (the output projection reads ``h`` features).
    """

    def __init__(self, dim: int, hidden: int, activation: nn.Module, bias: bool):
        super().__init__()
        self.proj = linear(dim, 2 * hidden, bias=bias)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)  # (b, n, 2h) -> 2 x (b, n, h)
        return value * self.activation(gate)


ACTIVATIONS = {
    "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "relu_squared": ReluSquared,
}


def activation_by_name(name: str) -> nn.Module:
    """One of :data:`ACTIVATIONS`; a ``ValueError`` naming the valid ones otherwise."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def build_activation(options: FeedForwardOptions) -> nn.Module:
    return activation_by_name(options.activation_name)


def hidden_width(dim: int, options: FeedForwardOptions) -> int:
    """``ff_inner_dim`` when given, else ``int(dim * ff_mult)``."""
    if options.inner_dim is not None:
        return options.inner_dim
    hidden = int(dim * options.mult)
    if hidden < 1:
        raise ValueError(
            f"'ff_mult'={options.mult} with dim={dim} gives a hidden width of {hidden}"
        )
    return hidden


class FeedForward(nn.Module):
    """``proj_in -> activation -> post_act_norm -> dropout -> proj_out``.

    ``proj_in`` is ``Linear(d, h) + activation``, or a :class:`GLU` with ``ff_glu``; disabled
    stages (the post-activation norm) are ``nn.Identity``.

    On its own, ``FeedForward(dim)`` uses the defaults; options go as the fields of
    :class:`~x_transformers.options.FeedForwardOptions` without the ``ff_`` prefix
    (``FeedForward(512, mult=2, glu=True)``) or as one ``options=`` object, not both.
    """

    def __init__(
        self,
        dim: int,
        options: FeedForwardOptions | None = None,
        dim_out: int | None = None,
        **fields,
    ):
        super().__init__()
        if options is not None and fields:
            raise TypeError(
                f"FeedForward: give 'options' or the keywords {sorted(fields)}, not both"
            )
        options = FeedForwardOptions(**fields) if options is None else options
        hidden = hidden_width(dim, options)
        bias = not options.no_bias
        activation = build_activation(options)
        if options.glu:
            self.proj_in = GLU(dim, hidden, activation, bias)
        else:
            self.proj_in = nn.Sequential(linear(dim, hidden, bias=bias), activation)
        # None when off (not Identity / p=0 dropout): no module call per decoding step
        self.post_act_norm = nn.LayerNorm(hidden, bias=bias) if options.post_act_ln else None
        self.dropout = nn.Dropout(options.dropout) if options.dropout > 0 else None
        self.proj_out = linear(hidden, dim_out or dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.proj_in(x)
        if self.post_act_norm is not None:
            hidden = self.post_act_norm(hidden)
        if self.dropout is not None:
            hidden = self.dropout(hidden)
        return self.proj_out(hidden)
