"""Checkpoints: atomic writes, verified reads, clear errors, nothing half-loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from x_transformers.cli.checkpoint import (
    MANIFEST_FILE,
    MODEL_FILE,
    STATE_FILE,
    check_fits,
    find_checkpoint,
    list_checkpoints,
    load_model_state,
    load_train_state,
    read_manifest,
    save_checkpoint,
)
from x_transformers.cli.errors import CheckpointError, CLIError

ROOT = Path(__file__).resolve().parents[2]


def small_state(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {"layer.weight": torch.randn(4, 3, generator=generator), "layer.bias": torch.zeros(4)}


def save(run_dir, step, keep=3, **train_state):
    state = {"step": step, "rng": [torch.get_rng_state()], **train_state}
    return save_checkpoint(run_dir, step, small_state(step), state, {"config": {}}, keep)


def test_round_trip_restores_every_tensor_exactly(tmp_path):
    path = save(tmp_path, 7, optimizer={"state": {"w": {"exp_avg": torch.ones(2)}}})
    assert path.name == "step-00000007" and find_checkpoint(tmp_path) == path
    manifest = read_manifest(path)
    assert manifest["step"] == 7 and set(manifest["files"]) == {MODEL_FILE, STATE_FILE}
    weights = load_model_state(path, manifest)
    assert all(torch.equal(weights[k], v) for k, v in small_state(7).items())
    state = load_train_state(path, manifest)
    assert state["step"] == 7 and torch.equal(state["rng"][0], torch.get_rng_state())
    assert torch.equal(state["optimizer"]["state"]["w"]["exp_avg"], torch.ones(2))


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    for step in (1, 2, 3, 4):
        save(tmp_path, step, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000003", "step-00000004"]


def test_a_truncated_weights_file_is_reported_not_loaded(tmp_path):
    path = save(tmp_path, 1)
    size = (path / MODEL_FILE).stat().st_size
    with open(path / MODEL_FILE, "r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(CheckpointError, match=rf"model.safetensors is truncated .*says {size}"):
        load_model_state(path, read_manifest(path))


def test_a_flipped_byte_is_caught_by_the_checksum(tmp_path):
    path = save(tmp_path, 1)
    data = bytearray((path / STATE_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / STATE_FILE).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="train_state.pt is corrupt: its SHA-256"):
        load_train_state(path, read_manifest(path))


def test_a_truncated_manifest_is_reported(tmp_path):
    path = save(tmp_path, 1)
    text = (path / MANIFEST_FILE).read_text()
    (path / MANIFEST_FILE).write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match="manifest.json is corrupt or truncated"):
        read_manifest(path)


def test_arbitrary_pickled_objects_are_refused(tmp_path):
    """weights_only loading: a train state holding a class instance is never unpickled."""
    path = save(tmp_path, 1, hook=Path("/not/a/tensor"))
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_train_state(path, read_manifest(path))


def test_a_state_that_does_not_fit_leaves_the_model_untouched():
    model = torch.nn.Linear(3, 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wrong = {"weight": torch.ones(4, 3), "bias": torch.ones(5)}
    with pytest.raises(CheckpointError, match=r"wrong shapes \['bias: \(5,\) vs model \(4,\)'\]"):
        check_fits(model, wrong, Path("ckpt"))
    with pytest.raises(CheckpointError, match=r"missing \['bias'\]"):
        check_fits(model, {"weight": torch.ones(4, 3)}, Path("ckpt"))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


KILLED_MID_WRITE = textwrap.dedent(
    """
    import os, signal, sys, torch
    from x_transformers.cli import checkpoint

    run = sys.argv[1]
    state = {"w": torch.arange(6.0)}
    checkpoint.save_checkpoint(run, 1, state, {"step": 1}, {"config": {}}, keep=3)
    real_fsync = checkpoint._fsync
    def die(path):  # the weights of step 2 are on disk, nothing else is
        os.kill(os.getpid(), signal.SIGKILL)
    checkpoint._fsync = die
    checkpoint.save_checkpoint(run, 2, {"w": torch.zeros(6)}, {"step": 2}, {"config": {}}, keep=3)
    """
)


def test_a_process_killed_mid_write_leaves_the_previous_checkpoint(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MID_WRITE, str(tmp_path)],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr.decode()
    leftovers = list((tmp_path / "checkpoints").glob(".tmp-*"))
    assert leftovers and (leftovers[0] / MODEL_FILE).exists()
    latest = find_checkpoint(tmp_path)
    assert latest.name == "step-00000001"
    assert torch.equal(load_model_state(latest, read_manifest(latest))["w"], torch.arange(6.0))
    save(tmp_path, 3)  # the next save sweeps the debris
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_sample_and_eval_report_a_truncated_checkpoint(cli, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    latest = find_checkpoint(run)
    with open(latest / MODEL_FILE, "r+b") as handle:
        handle.truncate(100)
    for command in ("sample", "eval"):
        code, _, err = cli(command, run)
        assert code == 2 and "Traceback" not in err
        assert f"{latest / MODEL_FILE} is truncated or corrupt" in err


def test_resume_reports_a_corrupt_manifest(cli, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    manifest = find_checkpoint(run) / MANIFEST_FILE
    manifest.write_text(json.dumps({"format": "something else"}))
    code, _, err = cli("train", "--resume", run)
    assert code == 2 and "unknown checkpoint format 'something else'" in err


def test_a_missing_safetensors_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(CLIError, match=r"pip install 'x-transformers\[cli\]'"):
        save(tmp_path, 1)
