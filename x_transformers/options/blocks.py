"""Options of the layer stack: norms, residuals and layout of the blocks.

Combinations that contradict each other (two norm types, ReZero with a norm, post-norm with
sandwich norm, two layouts at once, ...) are refused here with an error naming the keywords, so a
keyword is never silently ignored. Checks that need the depth live in the layout and the builders.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .spec import option


@dataclass(frozen=True)
class BlockOptions:
    # --- norms -------------------------------------------------------------------------------
    pre_norm: bool = option(True, "pre-norm (False: post-norm)")
    # ScaleNorm ("Transformers without Tears"): g * x / ||x|| with one learned scalar g
    use_scalenorm: bool = option(False, "ScaleNorm", "1910.05895")
    # RMSNorm ("Root Mean Square Layer Normalization"): no centring, no bias
    use_rmsnorm: bool = option(False, "RMSNorm", "1910.07467")
    # ReZero ("ReZero is All You Need"): no norm anywhere, branch output times a zero-init scalar
    use_rezero: bool = option(False, "ReZero: no norm, zero-initialised gate", "2003.04887")
    # sandwich norm (CogView): pre-norm plus a norm on every branch output
    sandwich_norm: bool = option(False, "extra norm on each branch output", "2105.13290")
    # DeepNet: post-norm with the residual scaled by alpha and a beta-scaled initialisation
    deepnorm: bool = option(False, "DeepNet residual scaling and init", "2203.00555")
    # set on the encoder of an encoder-decoder (XTransformer does it): the decoder's depth M, so
    # the encoder uses DeepNet's encoder-decoder constants alpha = 0.81 (N^4 M)^(1/16), ...
    deepnorm_decoder_depth: int | None = option(
        None, "DeepNet: depth of the decoder this encoder feeds (encoder-decoder)", "2203.00555"
    )
    # epsilon of every norm of the stack (None: each norm's default, 1e-5 LayerNorm, 1e-8
    # RMSNorm, 1e-5 ScaleNorm); BERT and ViT use 1e-12, Llama and T5 1e-6
    norm_eps: float | None = option(None, "epsilon of the stack's norms (default: the norm's own)")
    # --- residuals ---------------------------------------------------------------------------
    # NormFormer's learned per-feature scale of the residual stream
    scale_residual: bool = option(False, "learned residual scale", "2110.09456")
    # GTrXL's GRU-type gate in place of the residual addition
    gate_residual: bool = option(False, "GRU-gated residual (GTrXL)", "1910.06764")
    # RealFormer: each self-attention adds the previous one's pre-softmax scores to its own
    residual_attn: bool = option(False, "residual attention scores", "2012.11747")
    # the same between the cross-attention blocks of a stack
    cross_residual_attn: bool = option(False, "residual cross-attention", "2012.11747")
    # ResFormer: later self-attention blocks mix in the first block's values
    add_value_residual: bool = option(False, "value residual learning", "2410.17897")
    # --- layout ------------------------------------------------------------------------------
    # feedforward - attention - feedforward, each feedforward a half step (Macaron Net)
    macaron: bool = option(False, "half-step feedforwards around attention", "1906.02762")
    # sandwich transformer: s^k (sf)^(depth-k) f^k
    sandwich_coef: int | None = option(None, "sandwich transformer coefficient", "1911.03864")
    # the whole plan spelled out, e.g. ('a', 'f', 'a', 'a', 'f')
    custom_layers: tuple[str, ...] | None = option(None, "explicit layout of 'a', 'c', 'f' blocks")
    # PAR transformer: one attention block per par_ratio blocks, all in the first two thirds
    par_ratio: int | None = option(None, "blocks per attention block (PAR)", "2009.04534")
    # token shift: an int for every block, or one value per block of the plan
    shift_tokens: int | tuple[int, ...] = option(0, "token shift (per block)")
    layer_dropout: float = option(0.0, "stochastic depth: drop whole blocks in training")
    # --- memory of training ------------------------------------------------------------------
    # RevNet / Reformer coupling y1 = x1 + F(x2), y2 = x2 + G(y1) of (attention, feedforward)
    # pairs: the backward pass recomputes each block's inputs from its outputs
    reversible: bool = option(
        False,
        "reversible residual layers (RevNet, 1707.04585): activation memory flat in depth",
        "2001.04451",
    )
    # torch.utils.checkpoint (non-reentrant) around every block: recompute in the backward pass
    checkpoint_blocks: bool = option(False, "activation checkpointing of every block", "1604.06174")
    # --- conditioning (DiT, "Scalable Diffusion Models with Transformers") -------------------
    # the forward takes condition= (b, dim_condition); layers/conditioning.py
    dim_condition: int | None = option(
        None, "width of the forward's condition= (b, dim_condition); default: dim", "2212.09748"
    )
    use_adaptive_layernorm: bool = option(
        False, "adaLN: LayerNorm gain and shift from condition= (zero-init)", "2212.09748"
    )
    use_adaptive_rmsnorm: bool = option(
        False, "adaptive RMSNorm: gain from condition= (zero-init)", "2212.09748"
    )
    use_adaptive_layerscale: bool = option(
        False, "adaLN-Zero: zero-init gates from condition= on every branch output", "2212.09748"
    )
    # --- residual topology -------------------------------------------------------------------
    # hyper-connections: n residual streams mixed by learned static and dynamic weights
    num_residual_streams: int = option(
        1, "hyper-connections: residual streams (1: plain residual)", "2409.19606"
    )
    # U-ViT: block j of the second half takes concat(input of block L-1-j, x) through a Linear
    unet_skips: bool = option(
        False, "long skips first half -> mirrored second half (concat, Linear)", "2209.12152"
    )

    def __post_init__(self):
        for name in ("custom_layers", "shift_tokens"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        _check_norms(self)
        _check_residuals(self)
        _check_layout(self)
        _check_reversible(self)
        _check_conditioning(self)
        _check_residual_streams(self)
        if not 0.0 <= self.layer_dropout < 1.0:
            raise ValueError(f"'layer_dropout' must lie in [0, 1), got {self.layer_dropout}")


def _active(options: BlockOptions, *names: str) -> list[str]:
    """The keywords among ``names`` set to a value other than their default."""
    defaults = {f.name: f.default for f in fields(options)}
    return [name for name in names if getattr(options, name) != defaults[name]]


def _refuse_together(active: list[str], why: str) -> None:
    if len(active) > 1:
        shown = ", ".join(f"'{name}'" for name in active)
        raise ValueError(f"{shown} cannot be combined: {why}")


def _check_norms(o: BlockOptions) -> None:
    _refuse_together(
        _active(o, "use_scalenorm", "use_rmsnorm", "use_rezero", *ADAPTIVE_NORMS),
        "each picks the norm of the stack",
    )
    if o.use_rezero:
        _refuse_together(
            ["use_rezero", *_active(o, "sandwich_norm", "deepnorm")], "ReZero removes every norm"
        )
        if not o.pre_norm:
            raise ValueError("'use_rezero' removes every norm, so 'pre_norm'=False has no effect")
    if o.norm_eps is not None and not o.norm_eps > 0:
        raise ValueError(f"'norm_eps' must be > 0, got {o.norm_eps}")
    if o.norm_eps is not None and o.use_rezero:
        raise ValueError("'norm_eps' has no effect with 'use_rezero', which removes every norm")
    if o.sandwich_norm and not o.pre_norm:
        raise ValueError("'sandwich_norm' adds a norm to pre-norm blocks; it needs 'pre_norm'=True")
    _refuse_together(_active(o, "deepnorm", "sandwich_norm"), "DeepNorm is a post-norm layout")
    if o.deepnorm_decoder_depth is not None:
        if not o.deepnorm:
            raise ValueError(
                f"'deepnorm_decoder_depth'={o.deepnorm_decoder_depth} needs 'deepnorm'=True"
            )
        if o.deepnorm_decoder_depth < 1:
            raise ValueError(
                f"'deepnorm_decoder_depth' must be >= 1, got {o.deepnorm_decoder_depth}"
            )


def _check_residuals(o: BlockOptions) -> None:
    """The residual keywords compose (the GRU gate takes the learned-scaled stream; DeepNet's
    alpha multiplies the learned scale) except DeepNet with the gate: DeepNet's alpha and beta
    are derived for the additive update alpha * x + f(x), which the gate replaces."""
    _refuse_together(
        _active(o, "deepnorm", "gate_residual"),
        "DeepNet's constants are derived for the additive residual alpha * x + f(x), which the "
        "GRU gate replaces",
    )


def _check_layout(o: BlockOptions) -> None:
    _refuse_together(
        _active(o, "macaron", "sandwich_coef", "custom_layers", "par_ratio"),
        "each sets the layout of the blocks",
    )
    shifts = o.shift_tokens if isinstance(o.shift_tokens, tuple) else (o.shift_tokens,)
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shifts):
        raise ValueError(f"'shift_tokens' must be ints >= 0, got {o.shift_tokens!r}")


# features that the reversible coupling cannot invert: they change the residual connection or
# normalise the stream itself, or hand data from block to block outside the two halves
REVERSIBLE_CONFLICTS = {
    "deepnorm": "DeepNorm scales the residual and normalises the stream",
    "scale_residual": "the learned residual scale replaces the coupling's plain addition",
    "gate_residual": "the gated residual replaces the coupling's plain addition",
    "residual_attn": "residual scores pass from block to block outside the coupling",
    "cross_residual_attn": "residual scores pass from block to block outside the coupling",
    "add_value_residual": "the first block's values pass to every later block",
    "macaron": "the coupling pairs one attention with one following feedforward",
    "sandwich_coef": "the coupling pairs one attention with one following feedforward",
    "par_ratio": "the coupling pairs one attention with one following feedforward",
    "checkpoint_blocks": "a reversible stack already recomputes its blocks (choose one)",
    "num_residual_streams": "hyper-connections replace the two coupled streams by their own",
    "unet_skips": "long skips hand the first half's inputs to the second half outside the coupling",
}


def _check_reversible(o: BlockOptions) -> None:
    """Reversible layers (1707.04585, 2001.04451) need plain pre-norm residual additions."""
    if not o.reversible:
        return
    if not o.pre_norm:
        raise ValueError(
            "'reversible' and 'pre_norm'=False cannot be combined: a post-norm normalises the "
            "residual stream, which the reversible coupling cannot invert"
        )
    for name in _active(o, *REVERSIBLE_CONFLICTS):
        _refuse_together(["reversible", name], REVERSIBLE_CONFLICTS[name])


ADAPTIVE_NORMS = ("use_adaptive_layernorm", "use_adaptive_rmsnorm")

# features that replace the residual addition, which hyper-connections replace themselves
RESIDUAL_STREAM_CONFLICTS = {
    "deepnorm": "DeepNorm scales the residual and normalises the stream",
    "scale_residual": "the learned residual scale replaces the residual addition",
    "gate_residual": "the gated residual replaces the residual addition",
}


def _check_conditioning(o: BlockOptions) -> None:
    """``dim_condition`` only with a feature that reads the condition (DiT, 2212.09748)."""
    users = _active(o, *ADAPTIVE_NORMS, "use_adaptive_layerscale")
    if o.dim_condition is not None:
        if isinstance(o.dim_condition, bool) or not isinstance(o.dim_condition, int):
            raise TypeError(f"'dim_condition' must be an int, got {o.dim_condition!r}")
        if o.dim_condition < 1:
            raise ValueError(f"'dim_condition' must be >= 1, got {o.dim_condition}")
        if not users:
            raise ValueError(
                f"'dim_condition'={o.dim_condition} does nothing without 'use_adaptive_layernorm',"
                " 'use_adaptive_rmsnorm' or 'use_adaptive_layerscale'"
            )


def _check_residual_streams(o: BlockOptions) -> None:
    """Hyper-connections (2409.19606) replace the residual addition of pre-norm blocks."""
    n = o.num_residual_streams
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"'num_residual_streams' must be an int >= 1, got {n!r}")
    if n == 1:
        return
    if not o.pre_norm:
        raise ValueError(
            "'num_residual_streams' and 'pre_norm'=False cannot be combined: a post-norm "
            "normalises the residual stream, which hyper-connections keep as several streams"
        )
    for name in _active(o, *RESIDUAL_STREAM_CONFLICTS):
        _refuse_together(["num_residual_streams", name], RESIDUAL_STREAM_CONFLICTS[name])
