"""Feature-matrix rows of the newer layer-stack building blocks (issue 15): conditioning (DiT,
2212.09748), hyper-connections (2409.19606) and U-Net long skips (U-ViT, 2209.12152).

Conditioned rows get a fixed ``condition=`` from ``build_model`` (tests/feature_matrix.py);
tests/properties/test_conditioned_rows.py checks the properties with a different condition per row.
The adaLN-Zero gates start at zero, so every block starts as the identity: an encoder cannot
show that it sees every position, and the branches and their input norms get exactly zero
gradient (tests/unit/test_conditioning.py opens the gates). The dynamic scales of
hyper-connections multiply projections that start at zero, so they get zero gradient at
initialisation.
"""

from tests.feature_matrix import case

CLOSED_GATES = ("branch.", "pre_branch_norm")
HYPER_SCALES = ("dynamic_alpha_scale", "dynamic_beta_scale")

CASES = [
    # --- conditioning ------------------------------------------------------------------------
    case("adaptive_layernorm", use_adaptive_layernorm=True, dim_condition=12),
    case("adaptive_rmsnorm", use_adaptive_rmsnorm=True),
    case(
        "adaptive_layerscale",
        tags=("decoder",),
        unused=CLOSED_GATES,
        use_adaptive_layerscale=True,
        dim_condition=6,
    ),
    case(
        "adaln_zero_sandwich",
        tags=("decoder",),
        unused=(*CLOSED_GATES, "post_branch_norm"),
        use_adaptive_layernorm=True,
        use_adaptive_layerscale=True,
        sandwich_norm=True,
        dim_condition=6,
    ),
    case("adaptive_layernorm_post_norm", use_adaptive_layernorm=True, pre_norm=False),
    # --- hyper-connections -------------------------------------------------------------------
    case("hyper_connections", unused=HYPER_SCALES, num_residual_streams=3),
    case(
        "hyper_connections_macaron_rmsnorm",
        unused=HYPER_SCALES,
        num_residual_streams=2,
        macaron=True,
        use_rmsnorm=True,
    ),
    # --- U-Net skips -------------------------------------------------------------------------
    case("unet_skips", unet_skips=True),
    case("unet_skips_par_ratio", unet_skips=True, par_ratio=2),
    # --- combinations ------------------------------------------------------------------------
    case(
        "hyper_unet_adaptive",
        unused=HYPER_SCALES,
        num_residual_streams=2,
        unet_skips=True,
        use_adaptive_rmsnorm=True,
        dim_condition=5,
    ),
    case(
        "unet_adaptive_checkpointed",
        use_adaptive_layernorm=True,
        unet_skips=True,
        checkpoint_blocks=True,
    ),
]
