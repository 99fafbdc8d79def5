"""A ragged batch equals each prompt alone, over the feature matrix (issue 13, item 2).

Prompts of different lengths are left-padded into one batch (``left_pad_prompts``); every row
must then get exactly what it gets alone: the logits of the prefill and of every decode step
(float64, tight tolerance), and the greedy tokens of ``generate`` given a list of prompts or a
padded tensor with ``prompt_lens``. Checked for every decoder row of the feature matrix, with
the dynamic and the static KV cache (rows that can be cached) and by recomputation (every row),
plus the combinations that issue 13 found broken, so a future feature that reads positions or
neighbouring tokens without honouring each row's start fails here.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from tests.feature_matrix import MAX_SEQ_LEN, NUM_TOKENS, build_model, case, cases_for
from x_transformers import AutoregressiveWrapper
from x_transformers.generation.decode import left_pad_prompts, open_session

NO_ABS = {"use_abs_pos_emb": False}
NO_CACHE = ("decoder", "no_cache")
# the combinations issue 13 found to differ from each prompt alone (item 2)
ISSUE_CASES = [
    case("ragged_rotary_mem_kv", wrapper_kwargs=NO_ABS, rotary_pos_emb=True, attn_num_mem_kv=2),
    case("ragged_xpos_mem_kv", wrapper_kwargs=NO_ABS, rotary_xpos=True, attn_num_mem_kv=2),
    case(
        "ragged_rotary_memory_tokens",
        wrapper_kwargs={**NO_ABS, "num_memory_tokens": 2},
        rotary_pos_emb=True,
    ),
    case(
        "ragged_xpos_memory_tokens",
        wrapper_kwargs={**NO_ABS, "num_memory_tokens": 2},
        rotary_xpos=True,
    ),
    case(
        "ragged_infused_memory_tokens",
        wrapper_kwargs={**NO_ABS, "num_memory_tokens": 2},
        position_infused_attn=True,
    ),
    case(
        "ragged_shift_memory_tokens",
        tags=NO_CACHE,
        wrapper_kwargs={"num_memory_tokens": 2},
        shift_tokens=1,
    ),
    case(
        "ragged_shift_2_memory_tokens_rotary",
        tags=NO_CACHE,
        wrapper_kwargs={**NO_ABS, "num_memory_tokens": 3},
        shift_tokens=2,
        rotary_pos_emb=True,
    ),
]
LENGTHS = (2, 6, 4)  # the longest first would hide a row that reads its neighbours' padding
STEPS = 4
TIGHT = {"rtol": 1e-9, "atol": 1e-9}


def _params(rows):
    return [pytest.param(row, id=row.id) for row in rows]


DECODER_ROWS = [p.values[0] for p in cases_for("decoder")] + ISSUE_CASES
TOKEN_ROWS = [row for row in DECODER_ROWS if "not_token_logits" not in row.tags]


def prompts_and_continuation():
    generator = torch.Generator().manual_seed(7)
    prompts = [torch.randint(0, NUM_TOKENS, (n,), generator=generator) for n in LENGTHS]
    continuation = torch.randint(0, NUM_TOKENS, (len(LENGTHS), STEPS), generator=generator)
    return prompts, continuation


def session_outputs(model, prompts, continuation, mode):
    """The outputs (b, steps + 1, v) of a decode session: the prefill of the (left-padded)
    prompts, then one step per token of ``continuation`` (b, steps)."""
    batch = left_pad_prompts(prompts)
    spec = model.decoding_spec()
    cache_kv = mode != "recompute"
    kind = "dynamic" if mode == "recompute" else mode
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # a row that cannot be cached says so; recomputing is fine
        session = open_session(
            model,
            spec,
            batch.tokens.shape[1],
            STEPS,
            cache_kv=cache_kv,
            cache_kind=kind,
            layer_inputs={},
            where="test",
        )
        outputs = [session.prefill(batch.tokens, batch.mask, batch.start_positions)]
        for step in range(STEPS):
            outputs.append(session.step(continuation[:, step : step + 1]))
    return torch.stack(outputs, dim=1)


def assert_rows_equal_alone(model, mode, label):
    """Each row of a ragged batch decodes (``mode``) to the outputs of its prompt alone."""
    prompts, continuation = prompts_and_continuation()
    batched = session_outputs(model, prompts, continuation, mode)
    for index, prompt in enumerate(prompts):
        alone = session_outputs(model, [prompt], continuation[index : index + 1], mode)
        torch.testing.assert_close(
            batched[index],
            alone[0],
            **TIGHT,
            msg=lambda m, i=index: f"{label} ({mode}): row {i} differs from alone\n{m}",
        )


def check_ragged_batch(model, label: str) -> None:
    """The property for any decoder model (also used by the random combinations): with both
    cache kinds when the model can be cached, and by recomputation."""
    cacheable = not model.attn_layers.kv_cache_blockers
    for mode in ("dynamic", "static", "recompute") if cacheable else ("recompute",):
        assert_rows_equal_alone(model, mode, label)


@pytest.mark.parametrize("row", _params(DECODER_ROWS))
def test_a_ragged_batch_equals_each_prompt_alone(row):
    """The logits of the prefill and of every step, per row, with every way the row decodes."""
    check_ragged_batch(build_model(row, "decoder"), row.id)


@pytest.mark.parametrize("row", _params(TOKEN_ROWS))
def test_greedy_generation_of_a_ragged_batch_equals_each_prompt_alone(row):
    """The public entry points: a list of prompts (dynamic cache) and a padded tensor with
    ``prompt_lens`` (static cache); rows that cannot be cached recompute, with a warning."""
    wrapper = AutoregressiveWrapper(build_model(row, "decoder"))
    prompts, _ = prompts_and_continuation()
    longest = max(LENGTHS)
    padded = torch.stack([F.pad(p, (longest - len(p), 0), value=1) for p in prompts])
    lens = torch.tensor(LENGTHS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = torch.stack([wrapper.generate(p, STEPS, temperature=0.0) for p in prompts])
        listed = wrapper.generate(prompts, STEPS, temperature=0.0, cache_kind="dynamic")
        by_lens = wrapper.generate(
            padded, STEPS, temperature=0.0, prompt_lens=lens, cache_kind="static"
        )
    assert torch.equal(listed, alone), (row.id, "dynamic", listed, alone)
    assert torch.equal(by_lens, alone), (row.id, "static, prompt_lens", by_lens, alone)


@pytest.mark.parametrize("row", _params(ISSUE_CASES))
def test_ragged_generation_past_the_window_equals_each_prompt_alone(row):
    """Past ``max_seq_len`` a dynamic cache slides (or decoding recomputes the window), and the
    rows still get what they get alone."""
    wrapper = AutoregressiveWrapper(build_model(row, "decoder"))
    prompts, _ = prompts_and_continuation()
    steps = MAX_SEQ_LEN  # every row goes past the window
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for options in ({"cache_kind": "dynamic"}, {"cache_kind": "static"}, {"cache_kv": False}):
            alone = [wrapper.generate(p, steps, temperature=0.0, **options) for p in prompts]
            batched = wrapper.generate(prompts, steps, temperature=0.0, **options)
            assert torch.equal(batched, torch.stack(alone)), (row.id, options)
