"""Feature-matrix rows of the norms, residuals, feedforwards and layouts (issue 5).

The stacks of the matrix have depth 2, so a per-block tuple of ``shift_tokens`` has 4 entries
(6 with macaron).
"""

from tests.feature_matrix import case

CASES = [
    # --- norms -------------------------------------------------------------------------------
    case("post_norm", pre_norm=False),
    case("scalenorm", use_scalenorm=True),
    case("rmsnorm", use_rmsnorm=True),
    case("rmsnorm_post_norm", use_rmsnorm=True, pre_norm=False),
    case("sandwich_norm", sandwich_norm=True),
    case("deepnorm", deepnorm=True),
    # the encoder side of an encoder-decoder (XTransformer sets the decoder depth)
    case("deepnorm_encoder_of_encdec", tags=("encoder",), deepnorm=True, deepnorm_decoder_depth=3),
    case("deepnorm_rmsnorm", deepnorm=True, use_rmsnorm=True),
    # ReZero blocks are the identity at initialisation: an encoder cannot show that it sees every
    # position and the branch weights get exactly zero gradient (unit tests open the gates).
    case("rezero", tags=("decoder",), unused=("branch.",), use_rezero=True),
    # --- residuals ---------------------------------------------------------------------------
    case("scale_residual", scale_residual=True),
    case("gate_residual", gate_residual=True),
    case("gate_residual_post_norm", gate_residual=True, pre_norm=False),
    # they compose (issue 13, item 12): the gate takes the scaled stream, DeepNet's alpha
    # multiplies the learned scale
    case("gate_scale_residual", gate_residual=True, scale_residual=True),
    case("deepnorm_scale_residual", deepnorm=True, scale_residual=True),
    # --- feedforward -------------------------------------------------------------------------
    case("ff_glu", ff_glu=True),
    case("ff_swiglu", ff_glu=True, ff_swish=True),
    case("ff_swish", ff_swish=True),
    case("ff_no_bias", ff_no_bias=True),
    case("ff_relu_squared", ff_relu_squared=True),
    case("ff_post_act_ln", ff_post_act_ln=True),
    case("ff_mult_fractional", ff_mult=1.5, ff_glu=True, ff_dropout=0.2),
    # --- layouts -----------------------------------------------------------------------------
    case("macaron", macaron=True),
    case("sandwich_coef", sandwich_coef=1),
    case("par_ratio", par_ratio=2),
    case("custom_layers", custom_layers=("a", "f", "a", "a", "f")),
    # --- token shift (generation recomputes: a cached step would need the previous inputs) ----
    case("shift_tokens", tags=("encoder", "decoder", "no_cache"), shift_tokens=1),
    case("shift_tokens_2", tags=("encoder", "decoder", "no_cache"), shift_tokens=2),
    case("shift_tokens_tuple", tags=("encoder", "decoder", "no_cache"), shift_tokens=(2, 1, 0, 1)),
    case(
        "shift_tokens_post_norm",
        tags=("encoder", "decoder", "no_cache"),
        shift_tokens=1,
        pre_norm=False,
    ),
    # --- combinations ------------------------------------------------------------------------
    case(
        "normformer_like",
        sandwich_norm=True,
        scale_residual=True,
        ff_post_act_ln=True,
        ff_glu=True,
        ff_swish=True,
        use_rmsnorm=True,
    ),
    case(
        "macaron_shift_scalenorm",
        tags=("encoder", "decoder", "no_cache"),
        macaron=True,
        use_scalenorm=True,
        shift_tokens=(1, 0, 1, 1, 0, 1),
    ),
    case("deepnorm_sandwich_coef_glu", deepnorm=True, sandwich_coef=2, ff_glu=True),
    # DeepNorm re-initialises the value and output projections, whatever their shape
    case("deepnorm_gqa_on_attn", deepnorm=True, attn_kv_heads=2, attn_on_attn=True),
    case(
        "gated_post_norm_relu2_no_bias",
        gate_residual=True,
        pre_norm=False,
        use_scalenorm=True,
        ff_relu_squared=True,
        ff_no_bias=True,
    ),
    case("rezero_macaron", tags=("decoder",), unused=("branch.",), use_rezero=True, macaron=True),
    case(
        "par_ratio_shift_rmsnorm",
        tags=("encoder", "decoder", "no_cache"),
        par_ratio=4,
        shift_tokens=1,
        use_rmsnorm=True,
    ),
    case("layer_dropout_macaron", layer_dropout=0.3, macaron=True, unused=("attn_layers.blocks",)),
]
