"""KV-cache equivalence over the feature matrix (DESIGN.md, "Generation and the KV cache").

For every decoder row that can be cached: a stepwise decode gives the logits of the full forward
(float64, tight tolerance), the static cache gives those of the dynamic one, a chunked prefill
equals a single one, and greedy generation yields the same tokens with and without the cache. The
same holds for the combination of every cacheable row, for cross-attention, and for rotary plus
cross-attention. Rows tagged ``no_cache`` must declare it: a cache is refused with an error naming
the feature, and ``generate`` warns and recomputes.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from tests.feature_matrix import (
    CASES,
    DEPTH,
    DIM,
    DIM_HEAD,
    HEADS,
    MAX_SEQ_LEN,
    NUM_TOKENS,
    build_model,
    case,
    cases_for,
)
from x_transformers import AutoregressiveWrapper, Decoder, TransformerWrapper
from x_transformers.generation.kv_cache import DynamicKVCache, StaticKVCache, kv_cache_blockers

SEQ = 10
TIGHT = {"rtol": 1e-10, "atol": 1e-10}


def tokens(batch=2, seq=SEQ, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, NUM_TOKENS, (batch, seq), generator=generator)


def decode_in_chunks(model, x, chunks, cache, **inputs):
    """Logits of x fed chunk by chunk (``chunks`` are the chunk lengths) through one cache."""
    outputs, start = [], 0
    for length in chunks:
        outputs.append(model(x[:, start : start + length], cache=cache, **inputs))
        start += length
    return torch.cat(outputs, dim=1)


def stepwise(model, x, prefill=3, cache=None, **inputs):
    """Prefill ``prefill`` tokens, then one token per step."""
    chunks = [prefill] + [1] * (x.shape[1] - prefill)
    return decode_in_chunks(model, x, chunks, cache or DynamicKVCache(), **inputs)


def capacity_for(model, seq=SEQ):
    return seq + model.num_memory_tokens


def cacheable(case) -> bool:
    return "no_cache" not in case.tags


def combined_case():
    """Every cacheable decoder row merged into one model, row by row, skipping a row whose
    keywords cannot join the ones gathered so far (e.g. two different norms)."""
    layer_kwargs, wrapper_kwargs, names = {}, {}, []
    for row in CASES:
        if not (row.applies_to("decoder") and cacheable(row)) or "not_token_logits" in row.tags:
            continue
        candidate = case(
            "combined",
            wrapper_kwargs={**wrapper_kwargs, **row.wrapper_kwargs},
            **{**layer_kwargs, **row.layer_kwargs},
        )
        try:
            build_model(candidate, "decoder")
        except (ValueError, TypeError, NotImplementedError):
            continue
        layer_kwargs, wrapper_kwargs = candidate.layer_kwargs, candidate.wrapper_kwargs
        names.append(row.id)
    return case("combined", wrapper_kwargs=wrapper_kwargs, **layer_kwargs), names


CACHEABLE = [p for p in cases_for("decoder") if cacheable(p.values[0])]
NOT_CACHEABLE = [p for p in cases_for("decoder") if not cacheable(p.values[0])]
COMBINED, COMBINED_ROWS = combined_case()
ALL_CACHEABLE = [*CACHEABLE, pytest.param(COMBINED, id="combined")]


def test_the_combination_gathers_many_rows():
    assert len(COMBINED_ROWS) >= 10, COMBINED_ROWS


@pytest.mark.parametrize("case", ALL_CACHEABLE)
def test_stepwise_decoding_equals_the_full_forward(case):
    model = build_model(case, "decoder")
    x = tokens()
    with torch.no_grad():
        full = model(x)
        torch.testing.assert_close(stepwise(model, x), full, **TIGHT)


@pytest.mark.parametrize("case", ALL_CACHEABLE)
def test_static_cache_equals_dynamic_cache(case):
    model = build_model(case, "decoder")
    x = tokens()
    with torch.no_grad():
        dynamic = stepwise(model, x, cache=DynamicKVCache())
        static = stepwise(model, x, cache=StaticKVCache(capacity_for(model)))
    torch.testing.assert_close(static, dynamic, **TIGHT)


@pytest.mark.parametrize("case", ALL_CACHEABLE)
def test_chunked_prefill_equals_a_single_prefill(case):
    model = build_model(case, "decoder")
    x = tokens()
    with torch.no_grad():
        single = decode_in_chunks(model, x, [SEQ], DynamicKVCache())
        chunked = decode_in_chunks(model, x, [3, 4, 3], DynamicKVCache())
        static_chunked = decode_in_chunks(model, x, [4, 6], StaticKVCache(capacity_for(model)))
    torch.testing.assert_close(chunked, single, **TIGHT)
    torch.testing.assert_close(static_chunked, single, **TIGHT)


@pytest.mark.parametrize("case", ALL_CACHEABLE)
def test_greedy_tokens_are_identical_with_and_without_cache(case):
    if "not_token_logits" in case.tags:
        pytest.skip(f"{case.id}: the output is not logits over the vocabulary")
    wrapper = AutoregressiveWrapper(build_model(case, "decoder"))
    prompt = tokens(seq=4)
    uncached = wrapper.generate(prompt, 6, temperature=0.0, cache_kv=False)
    cached = wrapper.generate(prompt, 6, temperature=0.0, cache_kv=True)
    static = wrapper.generate(prompt, 6, temperature=0.0, cache_kind="static")
    assert torch.equal(cached, uncached)
    assert torch.equal(static, uncached)


@pytest.mark.parametrize("case", CACHEABLE)
def test_intermediates_carry_the_cache(case):
    """The public contract: ``logits, cache = model(x, return_intermediates=True)``, then
    ``model(x_next, cache=cache)``."""
    model = build_model(case, "decoder")
    x = tokens()
    with torch.no_grad():
        first, cache = model(x[:, :6], return_intermediates=True)
        rest = model(x[:, 6:], cache=cache)
        full = model(x)
    torch.testing.assert_close(torch.cat((first, rest), dim=1), full, **TIGHT)


@pytest.mark.parametrize("case", NOT_CACHEABLE)
def test_features_that_cannot_be_cached_say_so(case):
    model = build_model(case, "decoder")
    blockers = kv_cache_blockers(model)
    assert blockers, f"{case.id} is tagged no_cache but declares no feature preventing the cache"
    with pytest.raises(ValueError, match="cannot use a KV cache"):
        model(tokens(), cache=DynamicKVCache())
    wrapper = AutoregressiveWrapper(model)
    prompt = tokens(seq=4)
    with pytest.warns(UserWarning, match="recomputes every step"):
        cached = wrapper.generate(prompt, 4, temperature=0.0, cache_kv=True)
    assert torch.equal(cached, wrapper.generate(prompt, 4, temperature=0.0, cache_kv=False))


# --- cross-attention ------------------------------------------------------------------------


def cross_attention_model(**layer_kwargs):
    torch.manual_seed(0)
    layers = Decoder(
        dim=DIM,
        depth=DEPTH,
        heads=HEADS,
        attn_dim_head=DIM_HEAD,
        cross_attend=True,
        dim_context=12,
        **layer_kwargs,
    )
    wrapper_kwargs = {"use_abs_pos_emb": False} if layer_kwargs else {}
    model = TransformerWrapper(
        num_tokens=NUM_TOKENS, max_seq_len=MAX_SEQ_LEN, attn_layers=layers, **wrapper_kwargs
    )
    return model.double().eval()


CROSS = [
    pytest.param({}, id="cross_attention"),
    pytest.param({"rotary_pos_emb": True}, id="rotary_cross_attention"),
    pytest.param({"rel_pos_bias": True, "attn_num_mem_kv": 2}, id="t5_mem_kv_cross_attention"),
]


@pytest.mark.parametrize("layer_kwargs", CROSS)
def test_cross_attention_decoding_equals_the_full_forward(layer_kwargs):
    model = cross_attention_model(**layer_kwargs)
    x = tokens()
    context = torch.randn(2, 5, 12, dtype=torch.float64)
    context_mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    inputs = {"context": context, "context_mask": context_mask}
    with torch.no_grad():
        full = model(x, **inputs)
        dynamic = stepwise(model, x, **inputs)
        static = stepwise(model, x, cache=StaticKVCache(SEQ), **inputs)
    torch.testing.assert_close(dynamic, full, **TIGHT)
    torch.testing.assert_close(static, full, **TIGHT)


def test_context_keys_and_values_are_computed_once():
    model = cross_attention_model()
    projected_lengths = []
    for block in model.attn_layers.blocks:
        if getattr(block.branch, "dim_context", None) == 12:  # the cross-attention blocks
            block.branch.proj.to_kv.register_forward_hook(
                lambda module, args, out: projected_lengths.append(args[0].shape[1])
            )
    context = torch.randn(2, 5, 12, dtype=torch.float64)
    with torch.no_grad():
        stepwise(model, tokens(), context=context)
    # two cross-attention blocks project the 5 context positions once; every later step
    # projects nothing (an empty input)
    assert sorted(length for length in projected_lengths if length) == [5, 5]
    assert len(projected_lengths) == 2 * (SEQ - 3 + 1)


def test_a_cache_needs_a_causal_stack():
    encoder = build_model(CASES[0], "encoder")
    with pytest.raises(ValueError, match="causal"):
        encoder(tokens(), cache=DynamicKVCache())


def test_attn_mask_is_refused_with_a_cache():
    model = build_model(CASES[0], "decoder")
    with pytest.raises(ValueError, match="attn_mask"):
        model(tokens(), cache=DynamicKVCache(), attn_mask=torch.ones(SEQ, SEQ, dtype=torch.bool))


def test_generation_warns_once_per_call_site_for_blocked_features():
    model = build_model(case("shift", shift_tokens=1), "decoder")
    wrapper = AutoregressiveWrapper(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            wrapper.generate(tokens(seq=3), 2, temperature=0.0)
    messages = [str(w.message) for w in caught if "recomputes" in str(w.message)]
    assert len(messages) == 1 and "shift" in messages[0].lower()
