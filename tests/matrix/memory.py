"""Feature-matrix rows of memory and recurrence (issue 6): memory tokens and the Transformer-XL
wrapper keywords, alone and with the positional and residual features they must compose with.

Memory tokens sit in front of every segment, so a two-segment XL pass differs from one long pass
by design: those rows carry ``no_xl``. The XL keywords only matter when ``mems=`` is given; their
rows check that a plain forward is unaffected (the XL properties live in
``tests/properties/test_recurrence.py``).
"""

from tests.feature_matrix import case

MEMORY_TOKENS = ("encoder", "decoder", "no_xl")
NO_ABS = {"use_abs_pos_emb": False}

CASES = [
    case("memory_tokens", tags=MEMORY_TOKENS, wrapper_kwargs={"num_memory_tokens": 3}),
    case(
        "memory_tokens_rotary",
        tags=MEMORY_TOKENS,
        wrapper_kwargs={**NO_ABS, "num_memory_tokens": 2},
        rotary_pos_emb=True,
    ),
    case(
        "memory_tokens_alibi",
        tags=MEMORY_TOKENS,
        wrapper_kwargs={**NO_ABS, "num_memory_tokens": 2},
        alibi_pos_bias=True,
    ),
    case(
        "memory_tokens_mem_kv",
        tags=MEMORY_TOKENS,
        wrapper_kwargs={"num_memory_tokens": 2},
        attn_num_mem_kv=2,
    ),
    case("max_mem_len", wrapper_kwargs={"max_mem_len": 6}),
    case("shift_mem_down", wrapper_kwargs={**NO_ABS, "max_mem_len": 6, "shift_mem_down": 1}),
    case("max_mem_len_gate_residual", wrapper_kwargs={"max_mem_len": 6}, gate_residual=True),
    case(
        "max_mem_len_rel_pos_bias",
        wrapper_kwargs={**NO_ABS, "max_mem_len": 6},
        rel_pos_bias=True,
    ),
]
