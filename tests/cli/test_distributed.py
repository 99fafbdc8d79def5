"""Multi-process training through torchrun on the CPU (gloo): DDP replicas stay identical, FSDP2
checkpoints hold the full model, and only rank 0 logs and writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.cli.conftest import ROOT, subprocess_env
from x_transformers.cli.checkpoint import find_checkpoint, list_checkpoints, read_manifest
from x_transformers.cli.metrics import METRICS_FILE, read_metrics

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="needs torch.distributed with gloo",
)


def torchrun(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = subprocess_env(tmp_path)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        *args,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def train_records(run: Path) -> list[dict]:
    return [r for r in read_metrics(run / METRICS_FILE) if "loss" in r]


def test_ddp_replicas_stay_identical(tmp_path, config_file, text_file):
    torchrun(
        str(ROOT / "tests" / "cli" / "ddp_worker.py"),
        str(config_file),
        str(text_file),
        str(tmp_path),
        tmp_path=tmp_path,
    )
    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    records = train_records(tmp_path / "run")
    assert [r["step"] for r in records] == list(range(1, 41))  # logged once, by rank 0
    assert sum(r["loss"] for r in records[-5:]) < sum(r["loss"] for r in records[:5]) - 5
    manifest = read_manifest(find_checkpoint(tmp_path / "run"))
    assert manifest["step"] == 40
    assert records[-1]["tokens"] == 40 * 2 * 8 * 32  # steps x ranks x batch x seq_len


def test_fsdp_resumes_and_its_checkpoint_loads_in_one_process(
    cli, tmp_path, config_file, text_file
):
    run = tmp_path / "run"
    torchrun(
        "-m",
        "x_transformers.cli",
        "train",
        "--fsdp",
        "--config",
        str(config_file),
        "--data",
        str(text_file),
        "--out",
        str(run),
        "--set",
        "train.steps=20",
        "--device",
        "cpu",
        "--stop-at",
        "10",
        tmp_path=tmp_path,
    )
    assert [p.name for p in list_checkpoints(run)] == ["step-00000010"]
    done = torchrun(
        "-m",
        "x_transformers.cli",
        "train",
        "--resume",
        str(run),
        "--device",
        "cpu",
        tmp_path=tmp_path,
    )
    assert "resuming at step 10" in done.stdout and "random streams restart" not in done.stdout
    manifest = read_manifest(find_checkpoint(run))
    assert manifest["step"] == 20 and manifest["config"]["train"]["parallel"] == "fsdp"
    records = train_records(run)
    assert [r["step"] for r in records] == list(range(1, 21))
    assert sum(r["loss"] for r in records[-3:]) < sum(r["loss"] for r in records[:3]) - 3
    code, out, err = cli("eval", run, "--json")  # the full model, in a single process
    assert code == 0, err
