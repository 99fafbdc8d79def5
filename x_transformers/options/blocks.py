"""Options of the layer stack: norms, residuals and layout of the blocks."""

from __future__ import annotations

from dataclasses import dataclass

from .spec import option


@dataclass(frozen=True)
class BlockOptions:
    # --- norms -------------------------------------------------------------------------------
    pre_norm: bool = option(True, "pre-norm (False: post-norm)")
    use_scalenorm: bool = option(False, "ScaleNorm", "1910.05895", False)
    use_rmsnorm: bool = option(False, "RMSNorm", "1910.07467", False)
    use_rezero: bool = option(False, "ReZero: no norm, zero-initialised gate", "2003.04887", False)
    sandwich_norm: bool = option(False, "extra norm on each branch output", "2105.13290", False)
    deepnorm: bool = option(False, "DeepNet residual scaling and init", "2203.00555", False)
    # --- residuals ---------------------------------------------------------------------------
    scale_residual: bool = option(False, "learned residual scale", "2110.09456", False)
    gate_residual: bool = option(False, "GRU-gated residual (GTrXL)", "1910.06764", False)
    residual_attn: bool = option(False, "residual attention scores", "2012.11747", False)
    cross_residual_attn: bool = option(False, "residual cross-attention", "2012.11747", False)
    # --- layout ------------------------------------------------------------------------------
    macaron: bool = option(False, "half-step feedforwards around attention", "1906.02762", False)
    sandwich_coef: int | None = option(
        None, "sandwich transformer coefficient", "1911.03864", False
    )
    custom_layers: tuple[str, ...] | None = option(
        None, "explicit layout of 'a', 'c', 'f' blocks", None, False
    )
    par_ratio: int | None = option(None, "attention : feedforward ratio", "1911.03864", False)
    shift_tokens: int | tuple[int, ...] = option(0, "token shift", None, False)
    layer_dropout: float = option(0.0, "stochastic depth: drop whole blocks in training")
