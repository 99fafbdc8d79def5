"""Graph export: the exported forward and decode step give the eager model's outputs back, and
a feature that cannot be exported is named."""

from __future__ import annotations

import pytest
import torch

from tests.feature_matrix import build_model as build_matrix_model
from tests.feature_matrix import cases_for
from x_transformers import Decoder, TransformerWrapper
from x_transformers.hub.export import (
    DecodeStep,
    ExportError,
    export_decode_step,
    export_decode_step_onnx,
    export_forward,
    export_onnx,
)

# the common decoder configurations: GPT-2-like, Llama-like, ALiBi, T5 relative bias
CONFIGS = {
    "gpt": {},
    "llama": dict(
        rotary_pos_emb=True,
        attn_kv_heads=2,
        use_rmsnorm=True,
        ff_glu=True,
        ff_swish=True,
        ff_no_bias=True,
    ),
    "alibi": dict(alibi_pos_bias=True),
    "t5_bias": dict(rel_pos_bias=True),
}


def decoder(wrapper_kwargs=None, **layer_kwargs):
    torch.manual_seed(0)
    absolute = not layer_kwargs  # relative schemes go without absolute positions
    model = TransformerWrapper(
        num_tokens=32,
        max_seq_len=16,
        attn_layers=Decoder(dim=32, depth=2, heads=4, **layer_kwargs),
        use_abs_pos_emb=absolute,
        **(wrapper_kwargs or {}),
    )
    return model.double().eval()


def tokens(length, batch=2, seed=0):
    return torch.randint(0, 32, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", CONFIGS)
def test_exported_forward_equals_eager(name):
    model = decoder(**CONFIGS[name])
    x = tokens(9)
    program = export_forward(model, x)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=0, atol=1e-12)
        other = tokens(9, seed=1)  # the graph is not specialised to the example's values
        torch.testing.assert_close(program.module()(other), model(other), rtol=0, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("case", cases_for("decoder"))
def test_every_matrix_decoder_exports(case):
    model = build_matrix_model(case, "decoder")
    x = tokens(7, seed=3) % 29
    if case.wrapper_kwargs.get("max_mem_len", 0) > 0:
        with pytest.raises(ExportError, match="'max_mem_len'"):
            export_forward(model, x)
        return
    with torch.no_grad():
        torch.testing.assert_close(export_forward(model, x).module()(x), model(x))


@pytest.mark.parametrize("name", CONFIGS)
def test_exported_decode_step_continues_the_prompt(name):
    model = decoder(**CONFIGS[name])
    prompt, new = tokens(5), tokens(3, seed=1)
    program, out, state = export_decode_step(model, capacity=12, example=prompt)
    step = program.module()
    with torch.no_grad():
        torch.testing.assert_close(out, model(prompt)[:, -1], rtol=0, atol=1e-12)
        for t in range(new.shape[1]):
            out, *state = step(new[:, t : t + 1], *state)
            seen = torch.cat((prompt, new[:, : t + 1]), dim=1)
            torch.testing.assert_close(out, model(seen)[:, -1], rtol=0, atol=1e-12)
            assert int(state[0]) == seen.shape[1]


def test_the_decode_step_does_not_mutate_its_inputs():
    model = decoder(**CONFIGS["llama"])
    step = DecodeStep(model, capacity=8)
    _, state = step.prefill(tokens(3))
    before = [t.clone() for t in state]
    with torch.no_grad():
        step(tokens(1, seed=2), *state)
    assert all(torch.equal(a, b) for a, b in zip(before, state))


def test_features_that_cannot_export_a_decode_step_are_named():
    with pytest.raises(ExportError, match="'shift_tokens' cannot use the KV cache"):
        DecodeStep(decoder(shift_tokens=1), capacity=8)
    with pytest.raises(ExportError, match="'cross_attend'"):
        DecodeStep(decoder(cross_attend=True), capacity=8)
    with pytest.raises(ExportError, match="'max_mem_len'"):
        export_forward(decoder({"max_mem_len": 4}), tokens(4))


onnx_runtime = pytest.importorskip  # alias: the ONNX tests skip without the test extra


def run_onnx(program, *inputs):
    onnxruntime = onnx_runtime("onnxruntime")
    session = onnxruntime.InferenceSession(program.model_proto.SerializeToString())
    names = [i.name for i in session.get_inputs()]
    outputs = session.run(None, dict(zip(names, (t.numpy() for t in inputs))))
    return [torch.from_numpy(o) for o in outputs]


ONNX_CONFIGS = [
    pytest.param(name, marks=() if name == "llama" else pytest.mark.slow) for name in CONFIGS
]


@pytest.mark.parametrize("name", ONNX_CONFIGS)
def test_onnx_forward_equals_eager(name, tmp_path):
    onnx_runtime("onnxscript")
    model = decoder(**CONFIGS[name]).float()
    x = tokens(7)
    program = export_onnx(model, x, tmp_path / "model.onnx")
    assert (tmp_path / "model.onnx").stat().st_size > 0
    [found] = run_onnx(program, x)
    with torch.no_grad():
        torch.testing.assert_close(found, model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_onnx_decode_step_continues_the_prompt():
    onnx_runtime("onnxscript")
    model = decoder(**CONFIGS["gpt"]).float()
    prompt, new = tokens(4), tokens(2, seed=1)
    program, _, state = export_decode_step_onnx(model, capacity=8, example=prompt)
    for t in range(new.shape[1]):
        out, *state = run_onnx(program, new[:, t : t + 1], *state)
        seen = torch.cat((prompt, new[:, : t + 1]), dim=1)
        with torch.no_grad():
            torch.testing.assert_close(out, model(seen)[:, -1], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_an_operation_onnx_lacks_names_the_feature():
    onnx_runtime("onnxscript")
    model = decoder(attn_sparse_topk=2).float()
    with pytest.raises(ExportError, match="'attn_sparse_topk' cannot be exported to ONNX"):
        export_onnx(model, tokens(6))


def test_an_exported_greedy_loop_equals_generate():
    from x_transformers import AutoregressiveWrapper

    model = decoder(**CONFIGS["llama"])
    prompt = tokens(4)
    program, logits, state = export_decode_step(model, capacity=10, example=prompt)
    step, generated = program.module(), []
    with torch.no_grad():
        for _ in range(6):
            next_token = logits.argmax(dim=-1, keepdim=True)  # (b, 1)
            generated.append(next_token)
            logits, *state = step(next_token, *state)
    expected = AutoregressiveWrapper(model).generate(prompt, 6, temperature=0.0)
    assert torch.equal(torch.cat(generated, dim=1), expected)
