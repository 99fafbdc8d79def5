"""save_pretrained / from_pretrained: every public model and every feature-matrix row comes back
with the same parameter names and exactly the same outputs."""

from __future__ import annotations

import json

import pytest
import torch

from tests.feature_matrix import build_model as build_matrix_model
from tests.feature_matrix import case_kind_pairs, fixed_condition
from x_transformers import (
    AttentionLayers,
    AutoregressiveWrapper,
    ContinuousAutoregressiveWrapper,
    ContinuousTransformerWrapper,
    CrossAttender,
    Decoder,
    Encoder,
    TransformerWrapper,
    ViTransformerWrapper,
    XLAutoregressiveWrapper,
    XTransformer,
)
from x_transformers.hub import load_pretrained
from x_transformers.hub import serialization as hub_serialization


def tokens(num_tokens=20, shape=(2, 9)):
    return torch.randint(0, num_tokens, shape, generator=torch.Generator().manual_seed(1))


def vectors(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(2))


def token_decoder(**kwargs):
    return TransformerWrapper(
        num_tokens=20, max_seq_len=16, attn_layers=Decoder(dim=16, depth=1, heads=2), **kwargs
    )


# name -> (builder, forward on a model); outputs compared with torch.equal
PUBLIC_MODELS = {
    "TransformerWrapper-Decoder": (token_decoder, lambda m: m(tokens())),
    "TransformerWrapper-Encoder": (
        lambda: TransformerWrapper(
            num_tokens=20,
            max_seq_len=16,
            attn_layers=Encoder(dim=16, depth=1, heads=2, rotary_pos_emb=True),
            tie_embedding=True,
        ),
        lambda m: m(tokens(), mask=torch.tensor([[True] * 9, [True] * 5 + [False] * 4])),
    ),
    "ContinuousTransformerWrapper": (
        lambda: ContinuousTransformerWrapper(
            dim_in=5, dim_out=3, max_seq_len=16, attn_layers=Decoder(dim=16, depth=1, heads=2)
        ),
        lambda m: m(vectors(2, 7, 5)),
    ),
    "ViTransformerWrapper": (
        lambda: ViTransformerWrapper(
            image_size=8, patch_size=4, num_classes=5, attn_layers=Encoder(dim=16, depth=1)
        ),
        lambda m: m(vectors(2, 3, 8, 8)),
    ),
    "XTransformer": (
        lambda: XTransformer(
            dim=16,
            tie_token_emb=True,
            enc_num_tokens=20,
            enc_depth=1,
            enc_heads=2,
            enc_max_seq_len=16,
            dec_num_tokens=20,
            dec_depth=1,
            dec_heads=2,
            dec_max_seq_len=16,
            dec_rotary_pos_emb=True,
        ),
        lambda m: m(tokens(), tokens(shape=(2, 6))),
    ),
    "Encoder": (lambda: Encoder(dim=16, depth=2, heads=2), lambda m: m(vectors(2, 5, 16))),
    "Decoder": (
        lambda: Decoder(dim=16, depth=1, heads=2, ff_glu=True, alibi_pos_bias=True),
        lambda m: m(vectors(2, 5, 16)),
    ),
    "CrossAttender": (
        lambda: CrossAttender(dim=16, depth=1, heads=2),
        lambda m: m(vectors(2, 5, 16), context=vectors(2, 4, 16)),
    ),
    "AttentionLayers": (
        lambda: AttentionLayers(16, 1, 2, causal=True, cross_attend=True),
        lambda m: m(vectors(2, 5, 16), context=vectors(2, 4, 16)),
    ),
    "AutoregressiveWrapper": (
        lambda: AutoregressiveWrapper(token_decoder(), ignore_index=0),
        lambda m: m(tokens()),
    ),
    "ContinuousAutoregressiveWrapper": (
        lambda: ContinuousAutoregressiveWrapper(
            ContinuousTransformerWrapper(
                dim_in=4, dim_out=4, max_seq_len=16, attn_layers=Decoder(dim=16, depth=1)
            )
        ),
        lambda m: m(vectors(2, 6, 4)),
    ),
    "XLAutoregressiveWrapper": (
        lambda: XLAutoregressiveWrapper(token_decoder(max_mem_len=4)),
        lambda m: m(tokens(shape=(2, 30))),
    ),
}


def parameter_names(model):
    return [name for name, _ in model.named_parameters()]


def assert_round_trip(model, forward, folder):
    model.eval()
    model.save_pretrained(folder)
    loaded = type(model).from_pretrained(folder)
    assert type(loaded) is type(model)
    assert parameter_names(loaded) == parameter_names(model)
    assert list(loaded.state_dict()) == list(model.state_dict())
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    with torch.no_grad():
        expected, found = forward(model), forward(loaded)
    assert torch.equal(found, expected)
    return loaded


@pytest.mark.parametrize("name", PUBLIC_MODELS)
def test_every_public_model_round_trips(name, tmp_path):
    build, forward = PUBLIC_MODELS[name]
    torch.manual_seed(0)
    model = build()
    loaded = assert_round_trip(model, forward, tmp_path)
    document = json.loads((tmp_path / "config.json").read_text())
    assert document["class"] == type(model).__name__ and document["format_version"] == 1
    # the loaded model writes back the same config, and loads from the class it names
    loaded.save_pretrained(tmp_path / "again")
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    assert again == document
    assert type(load_pretrained(tmp_path)) is type(model)


@pytest.mark.parametrize("case, kind", case_kind_pairs())
def test_feature_matrix_round_trips(case, kind, tmp_path):
    model = build_matrix_model(case, kind)
    x = tokens(29, (2, 7))  # conditioned rows: the loaded model has no fixed-condition hook
    assert_round_trip(model, lambda m: m(x, **fixed_condition(m, 2)), tmp_path)


def test_config_reads_like_the_python_call(tmp_path):
    model = TransformerWrapper(
        num_tokens=20,
        max_seq_len=16,
        attn_layers=Decoder(dim=16, depth=1, heads=2, shift_tokens=(1, 0)),
        emb_dropout=0.1,
    )
    model.save_pretrained(tmp_path)
    document = json.loads((tmp_path / "config.json").read_text())
    assert document["kwargs"] == {
        "num_tokens": 20,
        "max_seq_len": 16,
        "attn_layers": {
            "class": "Decoder",
            "kwargs": {"dim": 16, "depth": 1, "heads": 2, "shift_tokens": [1, 0]},
        },
        "emb_dropout": 0.1,
    }


def test_tied_embedding_is_stored_once_and_tied_again(tmp_path):
    build, _ = PUBLIC_MODELS["XTransformer"]
    model = build()
    model.save_pretrained(tmp_path)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as handle:
        stored = set(handle.keys())
    assert "encoder.token_emb.weight" in stored
    assert "decoder.net.token_emb.weight" not in stored
    loaded = XTransformer.from_pretrained(tmp_path)
    assert loaded.decoder.net.token_emb.weight is loaded.encoder.token_emb.weight


def test_dtype_device_and_meta_build(tmp_path, monkeypatch):
    model = token_decoder().double().eval()
    model.save_pretrained(tmp_path)
    built = []
    build_on_meta = hub_serialization.build_on_meta

    def recording_build(*args):
        net = build_on_meta(*args)
        built.append({p.device.type for p in net.parameters()})
        return net

    monkeypatch.setattr(hub_serialization, "build_on_meta", recording_build)
    as_stored = TransformerWrapper.from_pretrained(tmp_path)
    assert built == [{"meta"}]  # built without memory, then the file's tensors assigned
    assert {p.dtype for p in as_stored.parameters()} == {torch.float64}
    half = TransformerWrapper.from_pretrained(tmp_path, device="cpu", dtype=torch.float32)
    assert {p.dtype for p in half.parameters()} == {torch.float32}
    assert {p.device.type for p in half.parameters()} == {"cpu"}
    assert not half.training and all(p.requires_grad for p in half.parameters())
    expected = model.float()(tokens())
    assert torch.equal(half(tokens()), expected)
