"""``xtransformers ablate`` end to end: the tiny shipped suite, its outputs, skipping finished runs,
resuming an interrupted one, and the same batches for every variant of a seed."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from x_transformers.cli import train as train_module
from x_transformers.cli.ablation.command import REPORT_FILE, RESULTS_FILE
from x_transformers.cli.ablation.plots import CURVES_FILE, DIFFERENCES_FILE
from x_transformers.cli.ablation.runner import RESULT_FILE
from x_transformers.cli.checkpoint import list_checkpoints
from x_transformers.cli.data import TrainBatches

RUNS = [("base", 0), ("rotary", 0), ("base", 1), ("rotary", 1)]


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def ablate(cli, out, data, *extra):
    return cli("ablate", "--suite", "tiny", "--data", data, "--out", out, "--steps", "12", *extra)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, text_file):
    """The tiny suite (2 configurations x 2 seeds, 12 steps) trained once for this module,
    keeping every checkpoint (steps 10 and 12)."""
    from x_transformers.cli.main import main

    out = tmp_path_factory.mktemp("ablation") / "out"
    threads = torch.get_num_threads()
    try:
        code = main(
            ["ablate", "--suite", "tiny", "--data", str(text_file), "--out", str(out)]
            + ["--steps", "12", "--set", "train.keep_checkpoints=3", "--threads", "1"]
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return out


def test_tiny_ablation_writes_the_table_results_and_plots(finished):
    results = json.loads((finished / RESULTS_FILE).read_text())
    assert [(r["variant"], r["seed"]) for r in results] == RUNS
    assert all(r["status"] == "done" and r["step"] == 12 for r in results)
    assert all(r["curve"][-1][0] == 12 and r["val_bpb"] == r["curve"][-1][1] for r in results)
    report = (finished / REPORT_FILE).read_text()
    rows = {
        line.split("|")[1].strip(): line
        for line in report.splitlines()
        if line.startswith("| ") and "±" in line and "variant" not in line
    }
    assert set(rows) == {"base", "rotary"}
    assert "1.00×" in rows["base"] and "×" in rows["rotary"]
    assert "xtransformers ablate --suite tiny" in report and "Machine:" in report
    if has_matplotlib():
        for name in (CURVES_FILE, DIFFERENCES_FILE):
            assert (finished / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_finished_runs(cli, finished, text_file, tmp_path, monkeypatch):
    out = tmp_path / "copy"
    shutil.copytree(finished, out)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(train_module, "train", no_training)
    code, stdout, stderr = ablate(cli, out, text_file, "--set", "train.keep_checkpoints=3")
    assert code == 0, stderr
    assert stdout.count("done before, skipped") == 4
    assert "(4 already done)" in stdout
    assert json.loads((out / RESULTS_FILE).read_text()) == json.loads(
        (finished / RESULTS_FILE).read_text()
    )


def test_an_interrupted_run_resumes_from_its_checkpoint_and_matches(
    cli, finished, text_file, tmp_path
):
    """Remove the result and the last checkpoint of one run: the rerun trains steps 11-12 from
    the step-10 checkpoint and lands on exactly the same validation loss."""
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    run = out / "runs" / "rotary" / "seed-1"
    expected = json.loads((run / RESULT_FILE).read_text())
    (run / RESULT_FILE).unlink()
    shutil.rmtree(list_checkpoints(run)[-1])
    assert [p.name for p in list_checkpoints(run)] == ["step-00000010"]
    code, stdout, stderr = ablate(cli, out, text_file, "--set", "train.keep_checkpoints=3")
    assert code == 0, stderr
    assert stdout.count("done before, skipped") == 3
    assert "resuming at step 10" in (run / "train.log").read_text()
    again = json.loads((run / RESULT_FILE).read_text())
    assert again["val_bpb"] == expected["val_bpb"]
    assert again["curve"] == expected["curve"]


def test_a_changed_suite_is_not_mixed_with_old_runs(cli, finished, text_file, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    code, _, stderr = cli(
        "ablate", "--suite", "tiny", "--data", text_file, "--out", out, "--steps", "14"
    )
    assert code == 2
    assert "another configuration" in stderr and "train.steps: 12 there, now 14" in stderr


def test_a_setting_added_later_with_its_default_keeps_finished_runs(
    cli, finished, text_file, tmp_path
):
    """A stored run lacking a [train] key that the command line gained since (at its default)
    is still the same run."""
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    for path in (out / "runs").glob("*/seed-*/result.json"):
        result = json.loads(path.read_text())
        del result["config"]["train"]["sample_temperature"]
        path.write_text(json.dumps(result))
    code, stdout, stderr = ablate(cli, out, text_file, "--set", "train.keep_checkpoints=3")
    assert code == 0, stderr
    assert stdout.count("done before, skipped") == 4


def test_every_variant_of_a_seed_trains_on_the_same_batches(cli, text_file, tmp_path, monkeypatch):
    """The batches the training loop actually draws, hashed: equal across variants for a seed,
    different between seeds, and equal to the hash each run records."""
    drawn: list[tuple[int, int, str]] = []
    original = TrainBatches.batch

    def recording(self, step, micro):
        batch = original(self, step, micro)
        drawn.append((self.seed, step, hashlib.sha256(batch.numpy().tobytes()).hexdigest()))
        return batch

    monkeypatch.setattr(TrainBatches, "batch", recording)
    code, _, stderr = cli(
        "ablate", "--suite", "tiny", "--data", text_file, "--out", tmp_path, "--steps", "3"
    )
    assert code == 0, stderr
    for seed in (0, 1):
        for step in range(3):
            hashes = {h for s, t, h in drawn if s == seed and t == step}
            assert len(hashes) == 1, (seed, step)
    first = {seed: {h for s, t, h in drawn if s == seed and t == 0}.pop() for seed in (0, 1)}
    assert first[0] != first[1]
    results = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert {r["first_batch_sha256"] for r in results if r["seed"] == 0} == {first[0]}
    assert (
        "every variant of a seed drew the same first batch" in (tmp_path / REPORT_FILE).read_text()
    )


@pytest.mark.slow  # two worker processes import torch (seconds each)
def test_parallel_jobs_give_the_same_results(cli, finished, text_file, tmp_path):
    """Two worker processes (one thread each) reproduce the in-process runs exactly."""
    code, stdout, stderr = ablate(
        cli, tmp_path, text_file, "--set", "train.keep_checkpoints=3", "--seeds", "1",
        "--jobs", "2", "--threads", "1",
    )  # fmt: skip
    assert code == 0, stderr
    ours = json.loads((tmp_path / RESULTS_FILE).read_text())
    theirs = json.loads((finished / RESULTS_FILE).read_text())[:2]
    assert [(r["variant"], r["val_bpb"]) for r in ours] == [
        (r["variant"], r["val_bpb"]) for r in theirs
    ]


def test_flags_are_checked(cli, text_file, tmp_path):
    for flags, message in [
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--jobs", "0"], "--jobs must be >= 1"),
        (["--steps", "0"], "--steps must be >= 1"),
    ]:
        code, _, stderr = cli("ablate", "--suite", "tiny", "--out", tmp_path, *flags)
        assert code == 2 and message in stderr, stderr


def test_list_names_the_shipped_suites(cli):
    code, stdout, _ = cli("ablate", "--list")
    assert code == 0
    assert {line.split()[0] for line in stdout.splitlines()} >= {"default", "extrapolation", "tiny"}
