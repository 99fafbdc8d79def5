"""Bad values and malformed files on the command line: always the documented one-line error
(``xtransformers COMMAND: error: ...``) and exit status 2, never a traceback or a silent run."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.cli.conftest import TINY_CONFIG
from x_transformers.cli.checkpoint import MANIFEST_FILE, MODEL_FILE, find_checkpoint


def one_line_error(code: int, err: str, command: str, *expected: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(f"xtransformers {command}: error: "), err
    for text in expected:
        assert text in err, (text, err)


# ---------------------------------------------------------------------------- [train] values


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.lr=inf", "[train] lr: expected a finite number, got inf"),
        ("train.lr=nan", "[train] lr: expected a finite number, got nan"),
        ("train.lr=-1", "[train] lr: expected a number > 0, got -1"),
        ("train.weight_decay=nan", "[train] weight_decay: expected a finite number, got nan"),
        ("train.grad_clip=nan", "[train] grad_clip: expected a finite number, got nan"),
        (
            "train.sample_temperature=nan",
            "[train] sample_temperature: expected a finite number, got nan",
        ),
        ("train.betas=[1.5, 0.95]", "[train] betas: expected 2 numbers in [0, 1), got [1.5, 0.95]"),
        ("train.betas=[0.9, nan]", "[train] betas: expected a list of two finite numbers"),
        ("train.min_lr_ratio=nan", "[train] min_lr_ratio: expected a finite number, got nan"),
        ("train.skip_nonfinite_steps=-1", "[train] skip_nonfinite_steps: expected an integer >= 0"),
        ("data.val_fraction=inf", "[data] val_fraction: expected a finite number, got inf"),
    ],
)
def test_non_finite_or_out_of_range_settings_are_refused(
    cli, tmp_path, config_file, text_file, override, expected
):
    key = override.split("=")[0]
    code, _, err = cli(
        "train", "--config", config_file, "--data", text_file, "--out", tmp_path / "run",
        "--set", override,
    )  # fmt: skip
    one_line_error(code, err, "train", f"--set {key}: {expected}")
    assert not (tmp_path / "run").exists()


def test_a_nan_in_the_config_file_names_the_file_and_key(cli, tmp_path, text_file):
    path = tmp_path / "nan.toml"
    path.write_text(TINY_CONFIG.replace("lr = 3e-3", "lr = nan"))
    code, _, err = cli("train", "--config", path, "--data", text_file, "--out", tmp_path / "run")
    one_line_error(code, err, "train", f"{path}: [train] lr: expected a finite number, got nan")


# ---------------------------------------------------------------------------- sample and eval


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--temperature", "nan", "--temperature: expected a finite number, got nan"),
        ("--temperature", "inf", "--temperature: expected a finite number, got inf"),
        ("--top-p", "nan", "--top-p: expected a finite number, got nan"),
        ("--min-p", "inf", "--min-p: expected a finite number, got inf"),
    ],
)
def test_sample_refuses_non_finite_numbers(cli, trained_run, flag, value, expected):
    code, out, err = cli("sample", trained_run, "--length", "8", flag, value)
    one_line_error(code, err, "sample", expected)
    assert out == ""


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--batch-size", "0", "--batch-size: expected an integer >= 1, got 0"),
        ("--batch-size", "-3", "--batch-size: expected an integer >= 1, got -3"),
        ("--max-bytes", "-5", "--max-bytes: expected an integer >= 2, got -5"),
        ("--max-bytes", "1", "--max-bytes: expected an integer >= 2, got 1"),
    ],
)
def test_eval_refuses_sizes_below_their_minimum(cli, trained_run, flag, value, expected):
    code, out, err = cli("eval", trained_run, flag, value)
    one_line_error(code, err, "eval", expected)
    assert out == ""


# ---------------------------------------------------------------------------- manifests


def _no_files(manifest):
    manifest["files"] = []


def _entry_without_bytes(manifest):
    del manifest["files"][MODEL_FILE]["bytes"]


def _no_config(manifest):
    del manifest["config"]


def _string_step(manifest):
    manifest["step"] = "forty"


@pytest.mark.parametrize(
    "damage, expected",
    [
        (_no_files, "'files' must be an object naming model.safetensors and train_state.pt"),
        (_entry_without_bytes, "'files' entry model.safetensors needs an integer 'bytes'"),
        (_no_config, "'config' must be an object of configuration sections, got None"),
        (_string_step, "'step' must be an integer >= 0, got 'forty'"),
    ],
)
@pytest.mark.parametrize("command", ["sample", "eval", "train"])
def test_a_manifest_of_the_wrong_shape_is_reported(
    cli, trained_run, tmp_path, command, damage, expected
):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    path = find_checkpoint(run) / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    damage(manifest)
    path.write_text(json.dumps(manifest))
    code, _, err = cli(*([command, "--resume", run] if command == "train" else [command, run]))
    one_line_error(code, err, command, f"{path} is not a valid manifest: {expected}")


# ---------------------------------------------------------------------------- non-UTF-8 files


def test_a_config_file_that_is_not_utf8_is_reported(cli, tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(TINY_CONFIG.replace("[train]", "# café\n[train]").encode("latin-1"))
    code, _, err = cli("train", "--config", path, "--out", tmp_path / "run")
    one_line_error(code, err, "train", f"config file '{path}' is not UTF-8 text (byte 0xe9")


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "does not exist"),
        (b"caf\xe9 au lait", "is not UTF-8 text (byte 0xe9 at offset 3)"),
        ("folder", "is a folder; expected a text file"),
    ],
)
def test_a_missing_or_unreadable_prompt_file_is_reported(
    cli, trained_run, tmp_path, content, expected
):
    path = tmp_path / "prompt.txt"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    code, out, err = cli("sample", trained_run, "--prompt-file", path, "--length", "8")
    one_line_error(code, err, "sample", f"--prompt-file '{path}' {expected}")
    assert out == ""
