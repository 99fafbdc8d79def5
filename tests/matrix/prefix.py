"""Feature-matrix rows of issue 15's stack keywords: ``rel_pos_kwargs`` for each relative bias.

``PrefixDecoder`` is a stack class, not a keyword, so the matrix's Encoder / Decoder models
cannot express it; ``tests/unit/test_prefix_decoder.py`` runs its properties (prefix visibility,
no leak past the prefix, KV-cache equivalence) over every decoder row of this matrix instead.
``cross_attn_dim_context`` (the context width) needs cross-attention:
``tests/unit/test_custom_positions.py``.
"""

from tests.feature_matrix import case

NO_ABS = {"use_abs_pos_emb": False}

CASES = [
    # few buckets so that the log-spaced and the saturated buckets are exercised at n=10
    case(
        "rel_pos_kwargs_t5",
        wrapper_kwargs=NO_ABS,
        rel_pos_bias=True,
        rel_pos_kwargs={"num_buckets": 8, "max_distance": 6},
    ),
    case(
        "rel_pos_kwargs_dynamic",
        wrapper_kwargs=NO_ABS,
        dynamic_pos_bias=True,
        rel_pos_kwargs={"depth": 1, "log_distance": True},
    ),
    case(
        "rel_pos_kwargs_alibi",
        wrapper_kwargs=NO_ABS,
        alibi_pos_bias=True,
        rel_pos_kwargs={"num_alibi_heads": 2},
    ),
]
