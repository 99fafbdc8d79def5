"""Feature-matrix rows of the options the reference families need (GPT-2, Llama, BERT, ViT, T5;
issue 11). The parity tests (tests/parity/) check them against the reference implementations;
these rows give them every property check."""

from tests.feature_matrix import case

TOKEN_MODEL = ("encoder", "decoder")

CASES = [
    case("ff_activation_gelu_tanh", ff_activation="gelu_tanh"),
    case("ff_activation_relu", ff_activation="relu"),
    case("ff_swiglu_by_name", ff_glu=True, ff_activation="silu", ff_no_bias=True),
    case("ff_inner_dim", ff_inner_dim=44),
    case("norm_eps_rmsnorm", use_rmsnorm=True, norm_eps=1e-6),
    case("norm_eps_post_norm", pre_norm=False, norm_eps=1e-12),
    case("attn_scale_one", attn_scale=1.0),
    # without token_type_ids every token has type 0 (only that row gets a gradient)
    case("token_types", TOKEN_MODEL, wrapper_kwargs={"num_token_types": 1}),
    case(
        "bert_mlm_head",
        TOKEN_MODEL,
        wrapper_kwargs={
            "post_emb_norm": True,
            "emb_norm_eps": 1e-12,
            "logits_transform": "gelu",
            "logits_bias": True,
            "tie_embedding": True,
        },
    ),
    case(
        "t5_tied_logits_scale",
        TOKEN_MODEL,
        wrapper_kwargs={"tie_embedding": True, "logits_scale": 32**-0.5},
    ),
    # the pooler acts on model.pool(hidden), outside the forward's logits
    case("pooler", TOKEN_MODEL, wrapper_kwargs={"pooler": True}, unused=("pooler",)),
]
