"""DeepNorm ("DeepNet: Scaling Transformers to 1,000 Layers", Wang et al., 2203.00555).

A post-norm block whose residual is scaled by a constant ``alpha > 1``, with the weights of the
feedforward and of the attention's value and output projections initialised with Xavier-normal
of gain ``beta < 1`` (queries and keys keep gain 1)::

    x ──┬── branch ──(+)── norm ──>        out = norm(branch(x) + alpha * x)
        └── * alpha ──┘

The constants depend on the depth (N encoder layers, M decoder layers; the paper's table):

=====================  ========================  ========================
architecture           alpha                     beta
=====================  ========================  ========================
encoder- / decoder-    (2N)^(1/4)                (8N)^(-1/4)
only
encoder of enc-dec     0.81 (N^4 M)^(1/16)       0.87 (N^4 M)^(-1/16)
decoder of enc-dec     (3M)^(1/4)                (12M)^(-1/4)
=====================  ========================  ========================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .attention import Attention
from .feedforward import FeedForward
from .options import LayerConfig


@dataclass(frozen=True)
class DeepNormConstants:
    alpha: float  # residual scale
    beta: float  # initialisation gain of the feedforward, value and output projections


def single_stack_constants(depth: int) -> DeepNormConstants:
    """Encoder-only (BERT) or decoder-only (GPT) with ``depth`` layers."""
    return DeepNormConstants(alpha=(2 * depth) ** 0.25, beta=(8 * depth) ** -0.25)


def encoder_decoder_constants(
    encoder_depth: int, decoder_depth: int
) -> tuple[DeepNormConstants, DeepNormConstants]:
    """(encoder constants, decoder constants) of an encoder-decoder with N and M layers."""
    n, m = encoder_depth, decoder_depth
    encoder = DeepNormConstants(
        alpha=0.81 * (n**4 * m) ** (1 / 16), beta=0.87 * (n**4 * m) ** (-1 / 16)
    )
    decoder = DeepNormConstants(alpha=(3 * m) ** 0.25, beta=(12 * m) ** -0.25)
    return encoder, decoder


def stack_constants(config: LayerConfig) -> DeepNormConstants:
    """The constants of one stack:

    - an encoder told its decoder's depth (``deepnorm_decoder_depth``, set by ``XTransformer``)
      uses the encoder-decoder encoder row;
    - a stack with self- and cross-attention (``cross_attend=True``: three sublayers per layer)
      is the decoder of an encoder-decoder;
    - anything else (including ``CrossAttender``, two sublayers per layer) is a single stack.
    """
    decoder_depth = config.blocks.deepnorm_decoder_depth
    if decoder_depth is not None:
        if config.causal or config.cross_attend:
            raise ValueError(
                f"'deepnorm_decoder_depth'={decoder_depth} is for the encoder of an "
                "encoder-decoder; this stack is causal or cross-attends"
            )
        return encoder_decoder_constants(config.depth, decoder_depth)[0]
    if config.cross_attend and not config.only_cross:
        return encoder_decoder_constants(1, config.depth)[1]
    return single_stack_constants(config.depth)


def _xavier_normal(weight: Tensor, gain: float) -> None:
    """Xavier-normal init of an (out, in) weight (or a writable view of one) in place."""
    fan_out, fan_in = weight.shape
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    with torch.no_grad():
        weight.normal_(0.0, std)


def _init_linears(module: nn.Module, gain: float) -> None:
    for linear in module.modules():
        if isinstance(linear, nn.Linear):
            _xavier_normal(linear.weight, gain)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)


def _init_attention(attention: Attention, beta: float) -> None:
    """q and k with gain 1; v and the output projection with ``beta`` (through the projections'
    role hook, so the fused key/value layout stays its own business)."""

    def init(role: str, weight: Tensor, bias: Tensor | None) -> None:
        _xavier_normal(weight, 1.0 if role in ("q", "k") else beta)
        if bias is not None:
            bias.zero_()

    attention.proj.initialize(init)


def deepnorm_init(branch: nn.Module, beta: float) -> None:
    """Re-initialise ``branch`` (an :class:`Attention` or :class:`FeedForward`) as DeepNet does:
    Xavier-normal, gain ``beta`` for the feedforward, values and output; gain 1 for q and k."""
    if isinstance(branch, FeedForward):
        _init_linears(branch, beta)
    elif isinstance(branch, Attention):
        _init_attention(branch, beta)
    else:
        raise TypeError(f"deepnorm cannot initialise a {type(branch).__name__} branch")
