"""What generation may know about a model: the declared ``DecodingSpec``, one capacity rule, the
shared sampling loop (eos and padding), and train / eval restored by every loop, also on error."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from x_transformers import (
    AttentionLayers,
    AutoregressiveWrapper,
    ContinuousAutoregressiveWrapper,
    ContinuousTransformerWrapper,
    Decoder,
    Encoder,
    TransformerWrapper,
    XLAutoregressiveWrapper,
    XTransformer,
)
from x_transformers.generation import DecodingSpec, cache_capacity, eval_mode
from x_transformers.generation.decode import open_session
from x_transformers.generation.loop import EosStop, sample_tokens

VOCAB = 17


def token_net(max_seq_len=8, stack=Decoder, layer_kwargs=None, **wrapper_kwargs):
    torch.manual_seed(0)
    return TransformerWrapper(
        num_tokens=VOCAB,
        max_seq_len=max_seq_len,
        attn_layers=stack(dim=16, depth=2, heads=2, attn_dim_head=8, **(layer_kwargs or {})),
        **wrapper_kwargs,
    ).double()


def prompt(batch=2, length=3, seed=1):
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


class Opaque(nn.Module):
    """A model known only through its forward and the spec it declares: none of the wrapper's
    modules (stem, memory tokens, layer stack) are reachable as attributes."""

    def __init__(self, net: nn.Module, **overrides):
        super().__init__()
        self.inner = [net]  # a list: not registered, so no attribute path leads into it
        self.overrides = overrides

    def decoding_spec(self) -> DecodingSpec:
        spec = self.inner[0].decoding_spec()
        return DecodingSpec(**{**spec.__dict__, **self.overrides})

    def forward(self, *args, **kwargs):
        return self.inner[0](*args, **kwargs)


# --- the declared interface -----------------------------------------------------------------


def test_wrappers_declare_what_decoding_needs():
    spec = token_net(
        max_seq_len=6, num_memory_tokens=2, max_mem_len=5, use_abs_pos_emb=False
    ).decoding_spec()
    assert spec == DecodingSpec(
        max_seq_len=6, causal=True, absolute_positions=False, num_memory_tokens=2, max_mem_len=5
    )
    assert spec.sliding_blocker == "num_memory_tokens"
    assert token_net().decoding_spec().sliding_blocker == "use_abs_pos_emb"
    assert token_net(sinusoidal_pos_emb=True).decoding_spec().absolute_positions
    assert token_net(use_abs_pos_emb=False).decoding_spec().sliding_blocker is None
    assert not token_net(stack=Encoder).decoding_spec().causal
    shifted = token_net(layer_kwargs={"shift_tokens": 1}).decoding_spec()
    assert shifted.kv_cache_blockers == ("shift_tokens",)
    continuous = ContinuousTransformerWrapper(
        dim_in=4, max_seq_len=9, attn_layers=Decoder(dim=16, depth=1, heads=2)
    ).decoding_spec()
    assert (continuous.max_seq_len, continuous.absolute_positions) == (9, True)


def test_a_spec_is_frozen_and_validated():
    spec = DecodingSpec(max_seq_len=4, causal=True)
    with pytest.raises(AttributeError):
        spec.max_seq_len = 5
    with pytest.raises(ValueError, match="max_seq_len must be >= 1, got 0"):
        DecodingSpec(max_seq_len=0, causal=True)
    with pytest.raises(ValueError, match="-1"):
        DecodingSpec(max_seq_len=4, causal=True, num_memory_tokens=-1)


def test_a_model_without_a_spec_is_refused_by_name():
    with pytest.raises(TypeError, match="AutoregressiveWrapper needs .*decoding_spec.*Linear"):
        AutoregressiveWrapper(nn.Linear(2, 2))


def test_generation_reads_only_the_declared_interface():
    net = token_net(max_seq_len=6, num_memory_tokens=2)
    opaque = AutoregressiveWrapper(Opaque(net))
    with pytest.warns(UserWarning, match=r"cannot slide \(num_memory_tokens\)"):
        out = opaque.generate(prompt(), 9, temperature=0.0)
    with pytest.warns(UserWarning, match="cannot slide"):
        expected = AutoregressiveWrapper(net).generate(prompt(), 9, temperature=0.0)
    assert torch.equal(out, expected)


def test_the_sliding_decision_follows_the_spec():
    net = token_net(max_seq_len=6, use_abs_pos_emb=False, layer_kwargs={"rotary_pos_emb": True})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rotary model slides silently ...
        AutoregressiveWrapper(net).generate(prompt(), 9, temperature=0.0)
    declared_absolute = AutoregressiveWrapper(Opaque(net, absolute_positions=True))
    with pytest.warns(UserWarning, match=r"cannot slide \(use_abs_pos_emb\)"):
        declared_absolute.generate(prompt(), 9, temperature=0.0)  # ... unless it says otherwise


def test_the_cache_blockers_come_from_the_spec():
    wrapper = AutoregressiveWrapper(Opaque(token_net(), kv_cache_blockers=("some_feature",)))
    with pytest.warns(UserWarning, match="'some_feature' cannot use the KV cache"):
        wrapper.generate(prompt(), 2)


# --- one capacity rule ----------------------------------------------------------------------


def test_capacity_is_the_window_part_plus_memory_tokens():
    spec = DecodingSpec(max_seq_len=8, causal=True, num_memory_tokens=3)
    assert cache_capacity(spec, 2, 4) == 6 + 3
    assert cache_capacity(spec, 5, 10) == 8 + 3
    net = token_net(num_memory_tokens=3)
    session = open_session(
        net,
        net.decoding_spec(),
        5,
        2,
        cache_kv=True,
        cache_kind="static",
        layer_inputs={},
        where="generate",
    )
    assert session.cache.capacity == 7 + 3


def test_token_and_continuous_generation_share_the_capacity_rule(monkeypatch):
    import x_transformers.generation.decode as decode

    calls = []

    def spy(spec, prompt_length, num_new):
        calls.append((prompt_length, num_new))
        return cache_capacity(spec, prompt_length, num_new)

    monkeypatch.setattr(decode, "cache_capacity", spy)
    AutoregressiveWrapper(token_net()).generate(prompt(), 2, cache_kind="static")
    continuous = ContinuousTransformerWrapper(
        dim_in=4, dim_out=4, max_seq_len=8, attn_layers=Decoder(dim=16, depth=1, heads=2)
    )
    ContinuousAutoregressiveWrapper(continuous).generate(
        torch.randn(1, 5, 4), 3, cache_kind="static"
    )
    assert calls == [(3, 2), (5, 3)]


# --- the shared loop: eos and padding -------------------------------------------------------


class ScriptedSession:
    """Returns one-hot logits for a fixed script of tokens (b, t) and counts its steps."""

    def __init__(self, script: torch.Tensor):
        self.script, self.steps = script, 0

    def logits(self) -> torch.Tensor:
        return nn.functional.one_hot(self.script[:, self.steps], VOCAB).double()

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        assert torch.equal(tokens[:, 0], self.script[:, self.steps])
        self.steps += 1
        return self.logits()


def test_rows_stop_at_eos_and_the_session_stops_when_all_have():
    script = torch.tensor([[4, 9, 5, 6, 7, 8], [4, 5, 9, 6, 7, 8]])
    session = ScriptedSession(script)
    greedy = torch.Tensor.argmax
    out = sample_tokens(session, session.logits(), 6, lambda x: greedy(x, -1), 9, pad_value=0)
    assert out.tolist() == [[4, 9, 0, 0, 0, 0], [4, 5, 9, 0, 0, 0]]
    assert session.steps == 2  # no forward after the last row emitted eos


def test_without_eos_every_token_is_kept_and_no_extra_step_runs():
    script = torch.tensor([[1, 2, 3]])
    session = ScriptedSession(script)
    out = sample_tokens(session, session.logits(), 3, lambda x: x.argmax(-1))
    assert out.tolist() == [[1, 2, 3]] and session.steps == 2
    stop = EosStop(None, pad_value=0)
    assert not stop.update(torch.tensor([1])) and stop.finish(out, 5) is out


# --- train / eval mode ----------------------------------------------------------------------


def xl_model():
    torch.manual_seed(0)
    net = TransformerWrapper(
        num_tokens=VOCAB,
        max_seq_len=4,
        max_mem_len=4,
        use_abs_pos_emb=False,
        attn_layers=Decoder(dim=16, depth=1, heads=2),
    )
    return XLAutoregressiveWrapper(net)


def xtransformer():
    torch.manual_seed(0)
    return XTransformer(
        dim=16,
        enc_num_tokens=VOCAB,
        enc_depth=1,
        enc_heads=2,
        enc_max_seq_len=8,
        dec_num_tokens=VOCAB,
        dec_depth=1,
        dec_heads=2,
        dec_max_seq_len=8,
    )


def continuous_wrapper():
    net = ContinuousTransformerWrapper(
        dim_in=4, dim_out=4, max_seq_len=8, attn_layers=Decoder(dim=16, depth=1, heads=2)
    )
    return ContinuousAutoregressiveWrapper(net)


LOOPS = {
    "generate": (
        lambda: AutoregressiveWrapper(token_net().float()),
        lambda m: m.generate(prompt(), 5),
    ),
    "generate_no_cache": (
        lambda: AutoregressiveWrapper(token_net().float()),
        lambda m: m.generate(prompt(), 5, cache_kv=False),
    ),
    "beam_search": (
        lambda: AutoregressiveWrapper(token_net().float()),
        lambda m: m.beam_search(prompt(), 5, beams=2),
    ),
    "continuous": (continuous_wrapper, lambda m: m.generate(torch.randn(2, 3, 4), 5)),
    "xl": (xl_model, lambda m: m.generate(prompt(length=6), 5)),
    "xtransformer": (xtransformer, lambda m: m.generate(prompt(), prompt(length=1), 5)),
}


def stacks(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, AttentionLayers)]


class Boom(RuntimeError):
    pass


def raise_on_call(number: int, seen: list):
    def hook(module, args, output):
        seen.append(module.training)
        if len(seen) == number:
            raise Boom("raised mid-generation")

    return hook


@pytest.mark.parametrize("loop", list(LOOPS))
def test_an_error_mid_generation_restores_train_mode(loop):
    build, run = LOOPS[loop]
    model = build().train()
    frozen = next(stacks(model)[0].children())  # a part the user keeps in eval mode
    frozen.eval()
    seen = []  # train mode of every stack call (the encoder's too), until the third raises
    for stack in stacks(model):
        stack.register_forward_hook(raise_on_call(3, seen))
    with pytest.raises(Boom):
        run(model)
    assert seen == [False, False, False]  # generation ran in eval mode ...
    assert model.training and all(m.training for m in stacks(model))  # ... and was undone
    assert not frozen.training and not any(m.training for m in frozen.modules())


@pytest.mark.parametrize("loop", list(LOOPS))
def test_a_finished_generation_restores_eval_mode(loop):
    build, run = LOOPS[loop]
    model = build().eval()
    seen = []
    for stack in stacks(model):
        stack.register_forward_hook(lambda module, args, output: seen.append(module.training))
    run(model)
    assert seen and not any(seen)
    assert not any(m.training for m in model.modules())


def test_eval_mode_restores_each_module_on_error():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    model[1].eval()
    with pytest.raises(Boom), eval_mode(model):
        assert not any(m.training for m in model.modules())
        raise Boom
    assert model.training and model[0].training and not model[1].training
