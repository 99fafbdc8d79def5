"""Feature-matrix rows of the attention variants (issue 3): every keyword alone, then combined on
the explicit path (features that need the attention matrix) and on the fused path (everything
``F.scaled_dot_product_attention`` can express, with ``attn_flash=True`` to require it).

Cross-attention spellings (``cross_attn_*``, ``cross_residual_attn``) need a context, which the
matrix models do not have; they are covered in ``tests/unit/test_attention_cross.py``.
"""

from tests.feature_matrix import case

CASES = [
    # --- alone ----------------------------------------------------------------------------------
    case("mem_kv", attn_num_mem_kv=2),
    case("sparse_topk", attn_sparse_topk=3),
    case("entmax15", attn_use_entmax15=True),
    case("talking_heads", attn_talking_heads=True),
    case("one_kv_head", attn_one_kv_head=True),
    case("kv_heads", attn_kv_heads=2),
    case("collab_heads", attn_collab_heads=True, attn_collab_compression=0.5),
    case("on_attn", attn_on_attn=True),
    case("gate_values", attn_gate_values=True),
    case("head_scale", attn_head_scale=True),
    case("qk_norm", attn_qk_norm=True),
    case("qk_norm_groups", attn_qk_norm=True, attn_qk_norm_groups=2),
    case("qk_norm_fixed_scale", attn_qk_norm=True, attn_qk_norm_learned_scale=False),
    case("qk_norm_scale", attn_qk_norm=True, attn_qk_norm_scale=4.0),
    case("qk_norm_dim_scale", attn_qk_norm=True, attn_qk_norm_dim_scale=True),
    case("residual_attn", residual_attn=True),
    case("residual_attn_post_norm", residual_attn=True, pre_norm=False),
    case("dim_head_differs", attn_dim_head=4),
    # --- combined: the explicit path --------------------------------------------------------------
    case(
        "attn_explicit_combined",
        attn_sparse_topk=4,
        attn_talking_heads=True,
        attn_num_mem_kv=2,
        attn_kv_heads=2,
        attn_qk_norm=True,
        attn_qk_norm_groups=2,
        attn_gate_values=True,
        attn_head_scale=True,
        attn_on_attn=True,
        residual_attn=True,
    ),
    case(
        "attn_entmax_combined",
        attn_use_entmax15=True,
        attn_sparse_topk=5,
        attn_collab_heads=True,
        attn_one_kv_head=True,
        attn_num_mem_kv=3,
        residual_attn=True,
        attn_qk_norm=True,
        attn_qk_norm_dim_scale=True,
    ),
    # --- combined: the fused path ---------------------------------------------------------------
    case(
        "attn_fused_combined",
        attn_flash=True,
        attn_kv_heads=2,
        attn_num_mem_kv=2,
        attn_qk_norm=True,
        attn_qk_norm_groups=2,
        attn_qk_norm_dim_scale=True,
        attn_gate_values=True,
        attn_head_scale=True,
        attn_on_attn=True,
    ),
    case(
        "attn_fused_collab_mqa",
        attn_flash=True,
        attn_collab_heads=True,
        attn_one_kv_head=True,
        attn_num_mem_kv=1,
    ),
]
