"""Feature-matrix rows of reversible layers and activation checkpointing (issue 14).

A reversible stack refuses Transformer-XL memories, so its rows are ``no_xl``; without gradients
(every cache and property check) the coupling runs directly, with the KV cache.
"""

from tests.feature_matrix import case

NO_XL = ("encoder", "decoder", "no_xl")

CASES = [
    case("reversible", NO_XL, reversible=True),
    case(
        "reversible_rotary_glu_dropout",
        NO_XL,
        reversible=True,
        rotary_pos_emb=True,
        ff_glu=True,
        attn_dropout=0.1,
        ff_dropout=0.1,
    ),
    case(
        "reversible_t5_sandwich_norm", NO_XL, reversible=True, rel_pos_bias=True, sandwich_norm=True
    ),
    case("checkpoint_blocks", checkpoint_blocks=True),
    case("checkpoint_blocks_residual_attn", checkpoint_blocks=True, residual_attn=True),
]
