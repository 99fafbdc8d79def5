"""Run configurations: presets, overrides, and errors that name the file and the key."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import TINY_CONFIG
from x_transformers import Decoder, TransformerWrapper
from x_transformers.cli.config import (
    build_model,
    parse_override,
    preset_names,
    read_config_file,
    read_preset,
    resolve,
    to_toml,
)
from x_transformers.cli.errors import ConfigError
from x_transformers.cli.settings import DataSettings, Range, TrainSettings


def write(tmp_path, text, name="run.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def load(path, overrides=()):
    raw, origin = read_config_file(path)
    return resolve(raw, origin, list(overrides))


def config_error(path, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        build_model(load(path, overrides))
    return str(info.value)


def test_unknown_library_keyword_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path, TINY_CONFIG.replace("heads = 2", "heads = 2\nattn_dropoutt = 0.1"))
    message = config_error(path)
    assert str(path) in message
    assert "[attn_layers] attn_dropoutt" in message
    assert "did you mean 'attn_dropout'" in message


def test_unknown_wrapper_keyword_is_reported_for_the_wrapper_section(tmp_path):
    path = write(
        tmp_path, TINY_CONFIG.replace("max_seq_len = 32", "max_seq_len = 32\nemb_dropot = 0.1")
    )
    message = config_error(path)
    assert f"{path}: [wrapper] emb_dropot" in message and "emb_dropout" in message


def test_type_mismatch_in_a_model_section_names_file_and_key(tmp_path):
    path = write(tmp_path, TINY_CONFIG.replace("depth = 1", 'depth = "two"'))
    message = config_error(path)
    assert f"{path}: [attn_layers] depth" in message and "'two'" in message


@pytest.mark.parametrize(
    "line, expected",
    [
        ('grad_clip = "high"', "[train] grad_clip: expected a finite number, got 'high'"),
        ("grad_accum = 1.5", "[train] grad_accum: expected an integer, got 1.5"),
        ("compile = 1", "[train] compile: expected a boolean"),
        ('precision = "fp16"', "[train] precision: expected one of ['auto', 'fp32', 'bf16']"),
        ("stpes = 10", "[train] stpes: unknown key; did you mean 'steps'?"),
    ],
)
def test_train_section_errors_name_file_and_key(tmp_path, line, expected):
    path = write(tmp_path, TINY_CONFIG.replace("[train]", f"[train]\n{line}"))
    with pytest.raises(ConfigError) as info:
        load(path)
    assert f"{path}: {expected}" in str(info.value)


def test_unknown_section_suggests_the_closest(tmp_path):
    path = write(tmp_path, TINY_CONFIG.replace("[train]", "[trian]"))
    with pytest.raises(ConfigError, match=r"unknown section \[trian\]; did you mean \[train\]"):
        load(path)


def test_invalid_toml_names_the_file(tmp_path):
    path = write(tmp_path, "[wrapper\nnum_tokens = 256")
    with pytest.raises(ConfigError, match=f"{path}: not valid TOML"):
        load(path)


def test_byte_tokens_need_a_256_vocabulary(tmp_path):
    path = write(tmp_path, TINY_CONFIG.replace("num_tokens = 256", "num_tokens = 100"))
    with pytest.raises(ConfigError, match=r"\[wrapper\] num_tokens: .*>= 256.*100"):
        load(path)


def test_encoder_is_refused_with_the_library_message(tmp_path):
    path = write(tmp_path, TINY_CONFIG.replace('type = "Decoder"', 'type = "Encoder"'))
    assert "causal" in config_error(path)


def test_unknown_layer_type_suggests_the_closest(tmp_path):
    path = write(tmp_path, TINY_CONFIG.replace('type = "Decoder"', 'type = "Decodr"'))
    assert "did you mean 'Decoder'" in config_error(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("attn_layers.depth=4", ("attn_layers", "depth", 4)),
        ("train.lr=1e-3", ("train", "lr", 1e-3)),
        ("attn_layers.attn_flash=true", ("attn_layers", "attn_flash", True)),
        ("train.betas=[0.9, 0.99]", ("train", "betas", [0.9, 0.99])),
        ("train.sample_prompt=def main(", ("train", "sample_prompt", "def main(")),
        ('data.path="a b.txt"', ("data", "path", "a b.txt")),
    ],
)
def test_override_values_are_read_as_toml(text, expected):
    assert parse_override(text) == expected


def test_overrides_apply_and_errors_point_at_the_override(config_file):
    config = load(config_file, ["attn_layers.depth=2", "train.lr=0.01"])
    assert config.model["attn_layers"]["depth"] == 2 and config.train.lr == 0.01
    message = config_error(config_file, ["attn_layers.dpeth=2"])
    assert "--set attn_layers.dpeth: [attn_layers] dpeth" in message and "'depth'" in message
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load(config_file, ["depth=2"])


def test_yaml_config_equals_toml(tmp_path, config_file):
    yaml = pytest.importorskip("yaml")
    toml_config = load(config_file)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(toml_config.to_dict()))
    assert load(path).to_dict() == toml_config.to_dict()


def test_yaml_without_pyyaml_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)
    path = write(tmp_path, "wrapper: {}", name="run.yaml")
    with pytest.raises(ConfigError, match="pip install pyyaml"):
        load(path)


def test_resolved_config_round_trips_through_toml(tmp_path, config_file):
    config = load(config_file, ['train.sample_prompt=say "hi"\n'])
    path = write(tmp_path, to_toml(config), name="again.toml")
    assert load(path).to_dict() == config.to_dict()


def test_presets_build_the_documented_shapes():
    assert {"tiny", "enwik8"} <= set(preset_names())
    tiny = resolve(*read_preset("tiny"))
    net, _ = build_model(tiny)
    assert isinstance(net, TransformerWrapper) and isinstance(net.attn_layers, Decoder)
    enwik8 = resolve(*read_preset("enwik8"))
    layers = enwik8.model["attn_layers"]
    assert (layers["dim"], layers["depth"], layers["heads"]) == (512, 6, 8)
    assert enwik8.seq_len == 1024 and enwik8.model["wrapper"]["num_tokens"] == 256
    net, _ = build_model(enwik8)
    assert 18e6 < sum(p.numel() for p in net.parameters()) < 21e6


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'tiny'"):
        read_preset("tiyn")


def test_cli_reports_config_errors_as_one_line(cli, tmp_path):
    path = write(tmp_path, TINY_CONFIG.replace("depth = 1", "depth = 1\nnot_a_keyword = 1"))
    code, out, err = cli("train", "--config", path, "--out", tmp_path / "run")
    assert code == 2 and "Traceback" not in err
    assert f"{path}: [attn_layers] not_a_keyword" in err


def test_every_default_setting_is_in_its_documented_range():
    for cls in (TrainSettings, DataSettings):
        for setting in dataclasses.fields(cls):
            valid = setting.metadata["valid"]
            values = setting.default if isinstance(setting.default, tuple) else [setting.default]
            assert valid is None or all(v in valid for v in values), setting.name


def test_ranges_read_as_they_are_written():
    assert [str(r) for r in (Range(low=1), Range(0, 1, high_open=True), Range(0, 1))] == [
        ">= 1",
        "in [0, 1)",
        "in [0, 1]",
    ]
    assert math.nan not in Range(low=0) and math.inf not in Range(0, 1)


def test_every_train_and_data_key_is_documented():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text("utf-8")
    for setting in dataclasses.fields(TrainSettings):  # a row of the [train] keys table
        assert f"\n| `{setting.name}` |" in docs, setting.name
    for setting in dataclasses.fields(DataSettings):  # the [data] keys are in the example
        assert f"\n{setting.name} = " in docs, setting.name
