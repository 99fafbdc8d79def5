"""generate(compile=True): exactly the eager tokens, one compilation reused across steps and
calls, the same samples for a seeded generator, and an eager fallback that says why."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch._dynamo.utils import counters

from x_transformers import AutoregressiveWrapper, Decoder, TransformerWrapper, XTransformer
from x_transformers.attention import Attend, AttentionStage, StageList
from x_transformers.attention.stages import SIMILARITY

pytestmark = pytest.mark.slow  # every configuration compiles a graph (seconds each)

BACKEND = "aot_eager"  # dynamo's graph (breaks, guards, recompiles) does not depend on it
NO_ABS = {"use_abs_pos_emb": False}

CONFIGS = {
    "absolute": ({}, {}),
    "rotary": ({"rotary_pos_emb": True}, NO_ABS),
    "alibi_gqa": ({"alibi_pos_bias": True, "attn_kv_heads": 2}, NO_ABS),
    "t5_mem_kv": ({"rel_pos_bias": True, "attn_num_mem_kv": 2}, NO_ABS),
    "memory_tokens_xpos": (
        {"rotary_xpos": True, "rotary_xpos_scale_base": 8},
        {**NO_ABS, "num_memory_tokens": 2},
    ),
    "stages": ({"attn_qk_rmsnorm": True, "add_value_residual": True, "attn_add_zero_kv": True}, {}),
}


def wrapper(layer_kwargs=None, wrapper_kwargs=None, **decoder_kwargs) -> AutoregressiveWrapper:
    torch.manual_seed(0)
    net = TransformerWrapper(
        num_tokens=29,
        max_seq_len=24,
        attn_layers=Decoder(
            dim=32, depth=2, heads=4, attn_dim_head=8, **(layer_kwargs or {}), **decoder_kwargs
        ),
        **(wrapper_kwargs or {}),
    )
    return AutoregressiveWrapper(net).eval()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_compiled_greedy_tokens_equal_eager(name):
    model = wrapper(*CONFIGS[name])
    prompts = [torch.randint(0, 29, (6,)), torch.randint(0, 29, (3,))]  # ragged
    eager = model.generate(prompts, 8, temperature=0.0)
    compiled = model.generate(prompts, 8, temperature=0.0, compile=BACKEND)
    assert torch.equal(compiled, eager)


def test_one_compilation_across_steps_and_calls():
    model = wrapper()
    prompt = torch.randint(0, 29, (2, 5))
    torch._dynamo.reset()
    counters.clear()
    first = model.generate(prompt, 10, temperature=0.0, compile=BACKEND)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs == 1
    other_prompt = torch.randint(0, 29, (2, 5))
    second = model.generate(other_prompt, 10, temperature=0.0, compile=BACKEND)
    assert counters["stats"]["unique_graphs"] == graphs  # nothing compiled again
    assert len(model.compiled_steps) == 1
    assert torch.equal(first, model.generate(prompt, 10, temperature=0.0))
    assert torch.equal(second, model.generate(other_prompt, 10, temperature=0.0))


@pytest.mark.parametrize("filter_name", ["top_k", "top_p", "min_p"])
def test_a_seeded_generator_draws_the_same_samples_compiled_or_not(filter_name):
    model = wrapper()
    prompt = torch.randint(0, 29, (3, 4))

    def sample(**compile):
        generator = torch.Generator().manual_seed(7)
        return model.generate(
            prompt, 9, temperature=0.8, filter_logits_fn=filter_name, generator=generator, **compile
        )

    eager = sample()
    assert torch.equal(sample(compile=BACKEND), eager)
    assert not torch.equal(eager, model.generate(prompt, 9, temperature=0.8))  # it is random


def test_eos_stops_rows_and_pads_like_eager():
    model = wrapper()
    prompt = torch.randint(0, 29, (2, 4))
    eos = int(model.generate(prompt, 3, temperature=0.0)[0, 1])
    eager = model.generate(prompt, 20, temperature=0.0, eos_token=eos)
    compiled = model.generate(prompt, 20, temperature=0.0, eos_token=eos, compile=BACKEND)
    assert torch.equal(compiled, eager)


def test_features_without_a_cache_fall_back_to_eager_with_a_warning():
    model = wrapper(shift_tokens=1)
    prompt = torch.randint(0, 29, (1, 4))
    with pytest.warns(UserWarning, match="compile=True.*'shift_tokens'"):
        compiled = model.generate(prompt, 5, temperature=0.0, compile=BACKEND)
    assert torch.equal(compiled, model.generate(prompt, 5, temperature=0.0))
    with pytest.warns(UserWarning, match="exceed max_seq_len=24"):
        wrapper().generate(prompt, 30, temperature=0.0, compile=BACKEND)


def test_encoder_decoder_generation_compiles_with_cached_context():
    torch.manual_seed(0)
    model = XTransformer(
        dim=32, enc_num_tokens=17, enc_depth=1, enc_heads=2, enc_max_seq_len=12,
        dec_num_tokens=19, dec_depth=2, dec_heads=2, dec_max_seq_len=16,
    ).eval()  # fmt: skip
    src, start = torch.randint(0, 17, (2, 7)), torch.randint(0, 19, (2, 1))
    eager = model.generate(src, start, 9, temperature=0.0)
    assert torch.equal(model.generate(src, start, 9, temperature=0.0, compile=BACKEND), eager)


def test_compile_takes_a_bool_or_a_backend_name():
    with pytest.raises(TypeError, match="'compile' must be a bool or a torch.compile backend"):
        wrapper().generate(torch.randint(0, 29, (1, 3)), 2, compile=1)


def test_the_default_backend_gives_the_eager_tokens():
    model = wrapper(*CONFIGS["rotary"])
    prompt = torch.randint(0, 29, (2, 5))
    assert torch.equal(
        model.generate(prompt, 6, temperature=0.0, compile=True),
        model.generate(prompt, 6, temperature=0.0),
    )


def _count_freezes(monkeypatch) -> list:
    """Record every inductor freezing pass (the weights folded into a compiled graph)."""
    import torch._inductor.freezing as freezing

    calls, freeze = [], freezing.freeze

    def counting_freeze(*args, **kwargs):
        calls.append(1)
        return freeze(*args, **kwargs)

    monkeypatch.setattr(freezing, "freeze", counting_freeze)
    return calls


def test_compile_true_freezes_the_weights_until_they_change_then_reads_them(monkeypatch):
    freezes = _count_freezes(monkeypatch)
    model = wrapper(*CONFIGS["rotary"])
    prompt = torch.randint(0, 29, (2, 5))
    assert torch.equal(
        model.generate(prompt, 6, temperature=0.0, compile=True),
        model.generate(prompt, 6, temperature=0.0),
    )
    assert len(freezes) == 1
    model.generate(prompt, 6, temperature=0.0, compile=True)
    assert len(freezes) == 1  # same weights: the frozen step is reused
    old_step = weakref.ref(next(iter(model.compiled_steps._steps.values())).fn)

    def train_a_little():  # in-place edits, as an optimizer step makes
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.mul_(-1.5)

    train_a_little()
    counters.clear()
    eager = model.generate(prompt, 6, temperature=0.0)
    assert torch.equal(model.generate(prompt, 6, temperature=0.0, compile=True), eager)
    assert counters["stats"]["unique_graphs"] == 1  # compiled once more, not frozen
    assert len(freezes) == 1 and len(model.compiled_steps) == 1
    gc.collect()
    assert old_step() is None  # the stale step is gone

    train_a_little()
    eager = model.generate(prompt, 6, temperature=0.0)
    assert torch.equal(model.generate(prompt, 6, temperature=0.0, compile=True), eager)
    assert counters["stats"]["unique_graphs"] == 1  # the step reads the weights: no recompile


def test_a_named_backend_reads_the_weights_at_each_step(monkeypatch):
    freezes = _count_freezes(monkeypatch)
    model = wrapper(*CONFIGS["rotary"])
    prompt = torch.randint(0, 29, (2, 5))
    torch._dynamo.reset()
    counters.clear()
    model.generate(prompt, 6, temperature=0.0, compile="inductor")
    graphs = counters["stats"]["unique_graphs"]
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(-1.5)
    eager = model.generate(prompt, 6, temperature=0.0)
    assert torch.equal(model.generate(prompt, 6, temperature=0.0, compile="inductor"), eager)
    assert counters["stats"]["unique_graphs"] == graphs and not freezes


def test_a_one_token_prompt_decodes_its_first_step_eagerly_then_compiles_once():
    model = wrapper(*CONFIGS["rotary"])
    prompt = torch.randint(0, 29, (2, 1))
    torch._dynamo.reset()
    counters.clear()
    compiled = model.generate(prompt, 9, temperature=0.0, compile=BACKEND)
    assert torch.equal(compiled, model.generate(prompt, 9, temperature=0.0))
    assert counters["stats"]["unique_graphs"] == 1


class LengthDependentStage(AttentionStage):
    """A similarity stage whose graph depends on the number of keys (as a user's stage may):
    a compiled step cannot take the cache length as a dynamic size with it."""

    point = SIMILARITY

    def forward(self, q, k, state=None):
        if k.shape[-2] < 9:
            return q, k
        return q * 1.0, k


def test_a_step_that_depends_on_the_cache_length_reads_the_whole_cache():
    model = wrapper(*CONFIGS["rotary"])
    for module in model.modules():
        if isinstance(module, Attend):
            module.stages = StageList([LengthDependentStage("length_dependent")])
            module.has_stages = True
    prompt = torch.randint(0, 29, (2, 5))
    eager = model.generate(prompt, 12, temperature=0.0)  # key lengths 6 to 16: both branches
    assert torch.equal(model.generate(prompt, 12, temperature=0.0, compile=BACKEND), eager)
    assert len(model.compiled_steps.whole_cache_keys) == 1
    assert torch.equal(model.generate(prompt, 12, temperature=0.0, compile=BACKEND), eager)
    assert len(model.compiled_steps) == 1  # only the whole-cache step is kept


def test_compile_true_samples_the_eager_tokens_for_a_seeded_generator():
    model = wrapper(*CONFIGS["alibi_gqa"])  # inductor, frozen weights, the C++ wrapper
    prompt = torch.randint(0, 29, (3, 4))

    def sample(**compile):
        generator = torch.Generator().manual_seed(11)
        return model.generate(
            prompt, 9, temperature=0.9, filter_logits_fn="top_p", generator=generator, **compile
        )

    assert torch.equal(sample(compile=True), sample())
