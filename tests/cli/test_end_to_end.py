"""The main job end to end: train a tiny model, watch the loss fall, then sample and evaluate."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from tests.cli.conftest import unigram_bits
from x_transformers.cli.checkpoint import find_checkpoint, list_checkpoints
from x_transformers.cli.main import load_for_inference
from x_transformers.cli.metrics import METRICS_FILE, read_metrics


def test_training_lowers_the_loss_below_the_unigram_baseline(trained_run, text_file):
    records = read_metrics(trained_run / METRICS_FILE)
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 40 and [r["step"] for r in records if "loss" in r] == list(range(1, 41))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 1.0, (first, last)
    val = [r["val_bpb"] for r in records if "val_bpb" in r]
    assert len(val) == 2 and val[1] < val[0]
    assert val[1] < unigram_bits(text_file.read_bytes()) - 0.3
    assert [p.name for p in list_checkpoints(trained_run)] == ["step-00000020", "step-00000040"]
    assert (trained_run / "config.toml").is_file()


def test_sample_continues_the_prompt(cli, trained_run):
    code, out, err = cli(
        "sample",
        trained_run,
        "--prompt",
        "The cat",
        "--length",
        "40",
        "--num-samples",
        "2",
        "--top-p",
        "0.9",
    )
    assert code == 0, err
    samples = out.split("\n" + "-" * 40 + "\n")
    assert len(samples) == 2 and all(s.startswith("The cat") for s in samples)
    greedy = [
        cli("sample", trained_run, "--prompt", "The", "--temperature", "0", "--seed", seed)
        for seed in ("1", "2")
    ]
    assert greedy[0] == greedy[1]


def test_sample_filters_are_validated_by_the_library(cli, trained_run):
    code, _, err = cli("sample", trained_run, "--top-p", "1.5")
    assert code == 2 and "top_p" in err


def test_eval_matches_an_independent_computation(cli, trained_run, text_file, tmp_path):
    """Bits per byte of the whole file, against a plain loop over the same model."""
    part = tmp_path / "part.txt"
    part.write_bytes(text_file.read_bytes()[:1000])
    code, out, err = cli("eval", trained_run, "--data", part, "--json", "--batch-size", "3")
    assert code == 0, err
    report = json.loads(out)
    config, model, _ = load_for_inference(str(trained_run), "cpu")
    data = torch.tensor(list(part.read_bytes()))
    total, count, seq_len = 0.0, 0, config.seq_len
    with torch.no_grad():
        for start in range(0, len(data) - 1, seq_len):
            window = data[start : start + seq_len + 1][None]
            logits = model.net(window[:, :-1])
            total += F.cross_entropy(logits[0], window[0, 1:], reduction="sum").item()
            count += window.shape[1] - 1
    assert report["bytes"] == count == 999
    assert math.isclose(report["bits_per_byte"], total / count / math.log(2), rel_tol=1e-5)


def test_eval_defaults_to_the_validation_split(cli, trained_run):
    code, out, _ = cli("eval", trained_run)
    assert code == 0 and "validation split of" in out and "bits per byte" in out
    manifest = json.loads((find_checkpoint(trained_run) / "manifest.json").read_text())
    assert manifest["step"] == 40


def test_progress_lines_when_stdout_is_not_a_terminal(cli, config_file, text_file, tmp_path):
    code, out, _ = cli(
        "train",
        "--config",
        config_file,
        "--data",
        text_file,
        "--out",
        tmp_path / "run",
        "--set",
        "train.steps=20",
    )
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("step ") and "tok/s" in line]
    assert [line.split()[1] for line in lines] == ["10/20", "20/20"]
    assert "--- sample at step 20 ---" in out and "val loss" in out


def test_an_existing_run_is_not_overwritten_by_accident(cli, trained_run, config_file, text_file):
    code, _, err = cli("train", "--config", config_file, "--data", text_file, "--out", trained_run)
    assert code == 2 and f"--resume {trained_run}" in err


def test_a_finished_run_has_nothing_left_to_do(cli, trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    code, out, _ = cli("train", "--resume", run)
    assert code == 0 and "nothing to do" in out


def test_curves_are_drawn_when_matplotlib_is_installed(trained_run, tmp_path):
    pytest.importorskip("matplotlib")
    from x_transformers.cli.plot import plot_curves

    png = plot_curves(trained_run / METRICS_FILE, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (trained_run / "curves.png").is_file()  # the run drew its own at the end


def test_long_prompts_slide_the_window(cli, trained_run):
    prompt = "The cat sat on the mat. " * 4  # longer than max_seq_len = 32
    code, out, err = cli("sample", trained_run, "--prompt", prompt, "--length", "40")
    assert code == 0 and out.startswith(prompt) and len(out.encode()) >= len(prompt) + 40, err
