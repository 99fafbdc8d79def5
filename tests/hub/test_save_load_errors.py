"""Strict loading: each kind of damage raises one error naming the file and the key or tensor,
before anything is loaded; nothing is ever unpickled."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from x_transformers import (
    ContinuousAutoregressiveWrapper,
    ContinuousTransformerWrapper,
    Decoder,
    TransformerWrapper,
)
from x_transformers.hub import ConfigError, WeightsError
from x_transformers.hub.serialization import sha256_of


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = TransformerWrapper(
        num_tokens=20, max_seq_len=16, attn_layers=Decoder(dim=16, depth=1, heads=2)
    )
    model.save_pretrained(tmp_path)
    return tmp_path


def edit_config(folder, change):
    path = folder / "config.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def rewrite_weights(folder, change):
    """Change the stored tensors and record the new file in config.json (so that the checksum
    passes and the name / shape checks are reached)."""
    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))

    def record(document):
        document["weights"].update(bytes=path.stat().st_size, sha256=sha256_of(path))

    edit_config(folder, record)


def load(folder, cls=TransformerWrapper):
    return cls.from_pretrained(folder)


def test_missing_tensor(saved):
    rewrite_weights(saved, lambda t: t.pop("token_emb.weight"))
    with pytest.raises(WeightsError, match=r"safetensors: missing tensor 'token_emb.weight'"):
        load(saved)


def test_unexpected_tensor(saved):
    rewrite_weights(saved, lambda t: t.update(extra=torch.zeros(2)))
    with pytest.raises(WeightsError, match=r"model\.safetensors: unexpected tensor 'extra'"):
        load(saved)


def test_shape_mismatch(saved):
    rewrite_weights(saved, lambda t: t.update({"token_emb.weight": torch.zeros(21, 16)}))
    with pytest.raises(WeightsError, match=r"tensor 'token_emb.weight' has shape \(21, 16\)"):
        load(saved)


def test_config_that_builds_another_shape(saved):
    edit_config(saved, lambda d: d["kwargs"].update(num_tokens=21))
    with pytest.raises(WeightsError, match="'token_emb.weight' has shape .* expects .21, 16."):
        load(saved)


def test_unknown_format_version(saved):
    edit_config(saved, lambda d: d.update(format_version=99))
    with pytest.raises(ConfigError, match=r"config\.json: unknown format_version 99"):
        load(saved)


def test_truncated_weights(saved):
    path = saved / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(WeightsError, match=r"model\.safetensors is truncated or corrupt"):
        load(saved)


def test_truncated_weights_without_a_recorded_size(saved):
    path = saved / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    edit_config(saved, lambda d: [d["weights"].pop(k) for k in ("bytes", "sha256")])
    with pytest.raises(WeightsError, match=r"model\.safetensors cannot be read as safetensors"):
        load(saved)


def test_corrupt_weights(saved):
    path = saved / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"model\.safetensors is corrupt: its SHA-256"):
        load(saved)


def test_corrupt_header(saved):
    path = saved / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[10:14] = b"\xff\xfe\x00{"
    path.write_bytes(bytes(data))
    edit_config(saved, lambda d: d["weights"].pop("sha256"))
    with pytest.raises(WeightsError, match=r"model\.safetensors cannot be read as safetensors"):
        load(saved)


def test_truncated_config(saved):
    path = saved / "config.json"
    path.write_text(path.read_text()[:40])
    with pytest.raises(ConfigError, match=r"config\.json is corrupt or truncated"):
        load(saved)


def test_config_for_another_class(saved):
    with pytest.raises(ConfigError, match=r"config\.json: key 'class' is 'TransformerWrapper'"):
        load(saved, ContinuousTransformerWrapper)
    with pytest.raises(ConfigError, match="key 'class' is 'TransformerWrapper', not a Decoder"):
        load(saved, Decoder)


def test_unknown_class_and_keyword(saved):
    edit_config(saved, lambda d: d["kwargs"]["attn_layers"].update({"class": "Decoderr"}))
    with pytest.raises(ConfigError, match="unknown model class 'Decoderr'"):
        load(saved)
    edit_config(saved, lambda d: d["kwargs"]["attn_layers"].update({"class": "Decoder"}))
    edit_config(saved, lambda d: d["kwargs"]["attn_layers"]["kwargs"].update(rotary=True))
    with pytest.raises(ConfigError, match=r"Decoder\(\*\*config.attn_layers\) refused .*rotary"):
        load(saved)


def test_tied_weights_that_differ_from_the_model(saved):
    edit_config(saved, lambda d: d["weights"].update(tied={"a.weight": "b.weight"}))
    with pytest.raises(WeightsError, match="tied weights"):
        load(saved)


def test_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"config\.json is missing"):
        load(tmp_path / "nowhere")


def test_nothing_is_unpickled(saved, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling during from_pretrained")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    load(saved)


def test_unsaveable_argument_is_named(tmp_path):
    net = ContinuousTransformerWrapper(
        dim_in=4, dim_out=4, max_seq_len=8, attn_layers=Decoder(dim=16, depth=1)
    )
    model = ContinuousAutoregressiveWrapper(net, loss_fn=F.l1_loss)
    with pytest.raises(ConfigError, match="ContinuousAutoregressiveWrapper.loss_fn is a function"):
        model.save_pretrained(tmp_path)
    assert not (tmp_path / "config.json").exists()
