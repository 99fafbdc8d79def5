"""Resuming repeats an uninterrupted run exactly (on the CPU, with the same thread count, which
the checkpoint records); resuming an older checkpoint never forks a run silently; SIGTERM
checkpoints before exiting."""

from __future__ import annotations

import io
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests.cli.conftest import TINY_CONFIG, subprocess_env
from x_transformers.cli.checkpoint import (
    find_checkpoint,
    list_checkpoints,
    load_model_state,
    read_manifest,
)
from x_transformers.cli.config import read_config_file, resolve
from x_transformers.cli.metrics import METRICS_FILE, read_metrics
from x_transformers.cli.train import train

# every source of randomness the loop has: dropout, forgetful causal masks, accumulation
RANDOM_CONFIG = (
    TINY_CONFIG.replace("heads = 2", "heads = 2\nattn_dropout = 0.1\nff_dropout = 0.1")
    .replace("[autoregressive]", "[autoregressive]\nmask_prob = 0.15")
    .replace("max_seq_len = 32", "max_seq_len = 32\nemb_dropout = 0.1")
    .replace("[train]", "[train]\ngrad_accum = 2")
)


def losses(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(run / METRICS_FILE) if "loss" in r]


def weights(run: Path) -> dict:
    latest = find_checkpoint(run)
    return load_model_state(latest, read_manifest(latest))


def test_resume_repeats_the_uninterrupted_losses_exactly(cli, tmp_path, text_file):
    config = tmp_path / "random.toml"
    config.write_text(RANDOM_CONFIG)
    common = [
        "--config",
        config,
        "--data",
        text_file,
        "--set",
        "train.steps=16",
        "--set",
        "train.eval_every=5",
        "--set",
        "train.checkpoint_every=4",
    ]
    code, _, err = cli("train", *common, "--out", tmp_path / "whole")
    assert code == 0, err
    code, out, err = cli("train", *common, "--out", tmp_path / "split", "--stop-at", "7")
    assert code == 0 and find_checkpoint(tmp_path / "split").name == "step-00000007", err
    code, out, err = cli("train", "--resume", tmp_path / "split")
    assert code == 0 and "resuming at step 7" in out, err

    whole, split = losses(tmp_path / "whole"), losses(tmp_path / "split")
    assert [s for s, _ in split] == list(range(1, 17))
    assert split == whole  # bit for bit: the same floats
    final_whole, final_split = weights(tmp_path / "whole"), weights(tmp_path / "split")
    assert all((final_whole[k] == final_split[k]).all() for k in final_whole)


def test_resume_may_only_change_train_and_data_keys(cli, trained_run):
    code, _, err = cli("train", "--resume", trained_run, "--set", "attn_layers.depth=3")
    assert code == 2 and "a resumed run keeps its model" in err


def test_resume_refuses_different_data(cli, trained_run, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("something else entirely\n" * 200)
    code, _, err = cli("train", "--resume", trained_run, "--data", other, "--set", "train.steps=50")
    assert code == 2 and "differs from the data of" in err


def test_sigterm_writes_a_checkpoint_before_exiting(tmp_path, text_file):
    """A real process, a real signal: exit status 143 after a checkpoint of the last step."""
    config = tmp_path / "long.toml"
    config.write_text(TINY_CONFIG)
    run = tmp_path / "run"
    env = subprocess_env(tmp_path)
    command = [
        sys.executable,
        "-m",
        "x_transformers.cli",
        "train",
        "--config",
        str(config),
        "--data",
        str(text_file),
        "--out",
        str(run),
        "--set",
        "train.steps=100000",
        "--set",
        "train.checkpoint_every=100000",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(losses(run)) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err.decode()
    step = read_manifest(find_checkpoint(run))["step"]
    assert 3 <= step < 100000 and f"stopped by SIGTERM at step {step}" in out.decode()
    assert losses(run)[-1][0] == step


class InterruptAt(io.StringIO):
    """An output stream that presses Ctrl-C (SIGINT) when the progress line of a step shows."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker

    def write(self, text: str) -> int:
        if self.marker in text:
            signal.raise_signal(signal.SIGINT)
        return super().write(text)


def test_ctrl_c_checkpoints_the_step_and_resume_finishes(tmp_path, config_file, text_file):
    config = resolve(
        *read_config_file(config_file), [f"data.path={str(text_file)!r}", "train.log_every=1"]
    )
    result = train(config, tmp_path / "run", out=InterruptAt("step 5/40"))
    # step 5 is printed after its stop flag was read: the signal stops the run after step 6
    assert result.stopped_by == signal.SIGINT and result.step == 6
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    latest = find_checkpoint(tmp_path / "run")
    assert read_manifest(latest)["step"] == 6
    resumed = train(config, tmp_path / "run", resume=latest, out=io.StringIO())
    assert resumed.stopped_by is None and resumed.step == 40 and len(resumed.losses) == 34


def checkpoint_names(run: Path) -> list[str]:
    return [p.name for p in list_checkpoints(run)]


def test_resuming_an_older_checkpoint_is_refused_naming_the_newer_ones(cli, trained_run, tmp_path):
    """Before, the resumed branch wrote step 25 next to the abandoned branch's step 40, and a
    later --resume silently continued the old branch with mixed metrics."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    metrics = (run / METRICS_FILE).read_text()
    older = run / "checkpoints" / "step-00000020"
    code, out, err = cli("train", "--resume", older, "--stop-at", "25")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{older} is not the newest checkpoint of {run} (step-00000040 is newer)" in err
    assert "--discard-newer" in err and f"--resume {run}" in err
    assert checkpoint_names(run) == ["step-00000020", "step-00000040"]
    assert (run / METRICS_FILE).read_text() == metrics


def test_discard_newer_continues_the_older_branch_alone(cli, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    older = run / "checkpoints" / "step-00000020"
    code, out, err = cli("train", "--resume", older, "--stop-at", "25", "--discard-newer")
    assert code == 0, err
    assert "discarded the newer checkpoints step-00000040 and the metrics after step 20" in out
    assert checkpoint_names(run) == ["step-00000020", "step-00000025"]
    assert [s for s, _ in losses(run)] == list(range(1, 26))
    code, out, err = cli("train", "--resume", run)
    assert code == 0 and "resuming at step 25" in out, err
    steps = [r["step"] for r in read_metrics(run / METRICS_FILE) if "loss" in r]
    assert steps == list(range(1, 41))  # one history, each step once
    validations = [r["step"] for r in read_metrics(run / METRICS_FILE) if "val_bpb" in r]
    assert validations == [20, 40]


def test_discard_newer_needs_resume(cli, config_file, tmp_path):
    code, _, err = cli("train", "--config", config_file, "--out", tmp_path, "--discard-newer")
    assert code == 2 and "--discard-newer only applies with --resume" in err


def test_the_checkpoint_records_the_thread_count_and_resume_notes_a_change(trained_run, tmp_path):
    """CPU kernels split reductions by thread: bit-identical resumption needs the same count."""
    runtime = read_manifest(find_checkpoint(trained_run))["runtime"]
    assert runtime == {"device": "cpu", "processes": 1, "threads": 1}
    config = resolve(read_manifest(find_checkpoint(trained_run))["config"], "checkpoint")
    out = io.StringIO()
    torch.set_num_threads(2)  # the autouse fixture restores the count
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    train(config, run_dir, resume=find_checkpoint(run_dir), out=out)
    assert "trained with 1 CPU threads, this run uses 2" in out.getvalue()
    assert "(--threads 1)" in out.getvalue()
