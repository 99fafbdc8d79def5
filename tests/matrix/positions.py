"""Feature-matrix rows of the positional schemes (wrapper level and layer level), alone and
combined with the attention variants."""

from tests.feature_matrix import case

NO_ABS = {"use_abs_pos_emb": False}

CASES = [
    # --- wrapper level ------------------------------------------------------------------------
    case("sinusoidal_pos_emb", wrapper_kwargs={"sinusoidal_pos_emb": True}),
    case("l2norm_embed", wrapper_kwargs={"l2norm_embed": True}),
    case(
        "l2norm_embed_sinusoidal", wrapper_kwargs={"l2norm_embed": True, "sinusoidal_pos_emb": True}
    ),
    case("post_emb_norm", wrapper_kwargs={"post_emb_norm": True}),
    # --- layer level, alone (no absolute positions, so the scheme is the only position signal) --
    case("rotary", wrapper_kwargs=NO_ABS, rotary_pos_emb=True),
    case("rotary_theta", wrapper_kwargs=NO_ABS, rotary_pos_emb=True, rotary_theta=500),
    case("rotary_partial", wrapper_kwargs=NO_ABS, rotary_pos_emb=True, rotary_emb_dim=4),
    case("rotary_xpos", wrapper_kwargs=NO_ABS, rotary_xpos=True, rotary_xpos_scale_base=8),
    case("rel_pos_bias", wrapper_kwargs=NO_ABS, rel_pos_bias=True),
    # few buckets so that the log-spaced ones and the saturated last one are exercised at n=10
    case(
        "rel_pos_bias_log_buckets",
        wrapper_kwargs=NO_ABS,
        rel_pos_bias=True,
        rel_pos_num_buckets=8,
        rel_pos_max_distance=6,
    ),
    case("dynamic_pos_bias", wrapper_kwargs=NO_ABS, dynamic_pos_bias=True),
    case(
        "dynamic_pos_bias_log",
        wrapper_kwargs=NO_ABS,
        dynamic_pos_bias=True,
        dynamic_pos_bias_log_distance=True,
    ),
    case("alibi", wrapper_kwargs=NO_ABS, alibi_pos_bias=True),
    case("alibi_two_heads", wrapper_kwargs=NO_ABS, alibi_pos_bias=True, alibi_num_heads=2),
    case("position_infused_attn", wrapper_kwargs=NO_ABS, position_infused_attn=True),
    # --- combinations ---------------------------------------------------------------------------
    case("rotary_with_abs_pos", rotary_pos_emb=True),
    case("rotary_alibi", wrapper_kwargs=NO_ABS, rotary_pos_emb=True, alibi_pos_bias=True),
    case(
        "infused_rotary_t5",
        wrapper_kwargs=NO_ABS,
        position_infused_attn=True,
        rotary_pos_emb=True,
        rel_pos_bias=True,
    ),
    case("rotary_flash", wrapper_kwargs=NO_ABS, rotary_pos_emb=True, attn_flash=True),
    case("alibi_flash", wrapper_kwargs=NO_ABS, alibi_pos_bias=True, attn_flash=True),
    case(
        "rotary_qk_norm_gqa",
        wrapper_kwargs=NO_ABS,
        rotary_xpos=True,
        attn_qk_norm=True,
        attn_kv_heads=2,
    ),
    case("rotary_collab_heads", wrapper_kwargs=NO_ABS, rotary_pos_emb=True, attn_collab_heads=True),
    case("t5_mem_kv", wrapper_kwargs=NO_ABS, rel_pos_bias=True, attn_num_mem_kv=2),
    case("t5_talking_heads", wrapper_kwargs=NO_ABS, rel_pos_bias=True, attn_talking_heads=True),
    case("dynamic_sparse_topk", wrapper_kwargs=NO_ABS, dynamic_pos_bias=True, attn_sparse_topk=3),
    case("alibi_entmax", wrapper_kwargs=NO_ABS, alibi_pos_bias=True, attn_use_entmax15=True),
    case(
        "infused_one_kv_head_gates",
        wrapper_kwargs=NO_ABS,
        position_infused_attn=True,
        attn_one_kv_head=True,
        attn_gate_values=True,
        attn_on_attn=True,
    ),
    case(
        "alibi_residual_attn",
        wrapper_kwargs=NO_ABS,
        alibi_pos_bias=True,
        residual_attn=True,
    ),
]
