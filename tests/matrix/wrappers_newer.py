"""Feature-matrix rows of the pooling wrapper keywords (issue 15): the output is one vector per
row, (b, num_tokens) from the head, so the rows are ``not_token_logits``. The class token sees
every position, so it needs an Encoder; mean pooling is tested on encoders too (a pooled output
has no per-position causality or KV cache to check). ``probabilistic`` belongs to continuous
models, which the matrix does not build (tests/unit/test_wrappers_pooling.py)."""

from tests.feature_matrix import case

POOLED = ("encoder", "not_token_logits")

CASES = [
    case("use_cls_token", POOLED, wrapper_kwargs={"use_cls_token": True}),
    case(
        "use_cls_token_memory_tokens",
        POOLED,
        wrapper_kwargs={"use_cls_token": True, "num_memory_tokens": 2},
    ),
    case("average_pool_embed", POOLED, wrapper_kwargs={"average_pool_embed": True}),
    case(
        "average_pool_embed_rotary",
        POOLED,
        wrapper_kwargs={"average_pool_embed": True, "use_abs_pos_emb": False},
        rotary_pos_emb=True,
    ),
]
