"""Feature-matrix rows of the core library."""

from tests.feature_matrix import case

TOKEN_MODEL = ("encoder", "decoder")

CASES = [
    case("default"),
    case("ff_mult_2", ff_mult=2),
    case("dim_head_16", attn_dim_head=16),
    case("flash_requested", attn_flash=True),
    case("dropouts", attn_dropout=0.1, ff_dropout=0.1, wrapper_kwargs={"emb_dropout": 0.1}),
    # stochastic depth skips whole blocks in training, so any block may miss a gradient
    case("layer_dropout", layer_dropout=0.5, unused=("attn_layers.blocks",)),
    case("no_abs_pos", wrapper_kwargs={"use_abs_pos_emb": False}),
    case("tied_embedding", wrapper_kwargs={"tie_embedding": True}),
    case("emb_dim_projected", wrapper_kwargs={"emb_dim": 24}),
    case("logits_dim", TOKEN_MODEL + ("not_token_logits",), wrapper_kwargs={"logits_dim": 7}),
    case(
        "only_embeddings",
        TOKEN_MODEL + ("not_token_logits",),
        wrapper_kwargs={"return_only_embed": True},
    ),
]
