"""Feature-matrix rows of the declared attention stages and the stack features built on the
per-forward state (issue 10): every keyword alone, then combined on the fused path (everything
the fused kernel can express, with ``attn_flash=True`` to require it) and on the explicit path.
"""

from tests.feature_matrix import case

NO_ABS = {"use_abs_pos_emb": False}
FUSED_SET = dict(
    attn_l2_distance=True,
    attn_qk_rmsnorm=True,
    attn_value_rmsnorm=True,
    attn_add_zero_kv=True,
    attn_gate_value_heads=True,
    add_value_residual=True,
)
EXPLICIT_SET = dict(
    attn_softclamp_logits=True,
    attn_logit_softclamp_value=5.0,
    attn_sigmoid=True,
    attn_add_zero_kv=True,
    add_value_residual=True,
)
# each positional scheme with both sets, so every stage meets every way of placing positions
POSITIONS = {
    "rotary": dict(rotary_pos_emb=True),
    "xpos": dict(rotary_xpos=True, rotary_xpos_scale_base=8),
    "t5": dict(rel_pos_bias=True),
    "dynamic": dict(dynamic_pos_bias=True),
    "alibi": dict(alibi_pos_bias=True),
    "infused": dict(position_infused_attn=True, attn_qkv_bias=True),
}

CASES = [
    # --- alone ----------------------------------------------------------------------------------
    case("softclamp_logits", attn_softclamp_logits=True, attn_logit_softclamp_value=2.0),
    case("sigmoid", attn_sigmoid=True),
    case("sigmoid_bias", attn_sigmoid=True, attn_sigmoid_bias=-2.0),
    case("laplace", attn_laplace=True),
    case("l2_distance", attn_l2_distance=True),
    case("qk_rmsnorm", attn_qk_rmsnorm=True),
    case("value_rmsnorm", attn_value_rmsnorm=True),
    case("add_zero_kv", attn_add_zero_kv=True),
    case("gate_value_heads", attn_gate_value_heads=True),
    case("value_residual", add_value_residual=True),
    case("value_residual_gqa", add_value_residual=True, attn_kv_heads=2),
    case("sublayer_dropout", attn_sublayer_dropout=0.1, ff_sublayer_dropout=0.2),
    case("qkv_bias", attn_qkv_bias=True),
    case("out_bias", attn_out_bias=True),
    # --- combined: the fused path -----------------------------------------------------------------
    case(
        "stages_fused_combined",
        attn_flash=True,
        attn_l2_distance=True,
        attn_qk_rmsnorm=True,
        attn_value_rmsnorm=True,
        attn_add_zero_kv=True,
        attn_gate_value_heads=True,
        attn_num_mem_kv=2,
        attn_kv_heads=2,
        attn_qkv_bias=True,
        attn_out_bias=True,
        add_value_residual=True,
    ),
    # --- combined: the explicit path --------------------------------------------------------------
    case(
        "stages_explicit_combined",
        attn_softclamp_logits=True,
        attn_logit_softclamp_value=5.0,
        attn_sigmoid=True,
        attn_talking_heads=True,
        attn_add_zero_kv=True,
        attn_qk_rmsnorm=True,
        residual_attn=True,
        add_value_residual=True,
    ),
    case(
        "stages_topk_softclamp_l2",
        attn_sparse_topk=3,
        attn_softclamp_logits=True,
        attn_l2_distance=True,
        attn_gate_value_heads=True,
        attn_head_scale=True,
    ),
]
CASES += [
    case(f"stages_{name}_{kind}", wrapper_kwargs=NO_ABS, **positions, **stages)
    for name, positions in POSITIONS.items()
    for kind, stages in (("fused", FUSED_SET), ("explicit", EXPLICIT_SET))
]
