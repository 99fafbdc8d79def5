"""A diverging run never trades good checkpoints for NaN: the loss and gradient norm are checked
at every sync point and the weights before every checkpoint; the run stops with a one-line error
and exit status 3, or skips a bounded number of non-finite steps when asked to."""

from __future__ import annotations

import io
import math
import shutil

import pytest
import torch
from torch import nn

from x_transformers.cli import distributed
from x_transformers.cli.checkpoint import (
    find_checkpoint,
    list_checkpoints,
    load_model_state,
    load_train_state,
    read_manifest,
)
from x_transformers.cli.config import read_config_file, resolve
from x_transformers.cli.errors import DivergenceError
from x_transformers.cli.metrics import METRICS_FILE, read_metrics
from x_transformers.cli.train import Trainer

SHORT = ["train.steps=12", "train.eval_every=100", "train.sample_length=0", "train.log_every=1"]


def finite_weights(checkpoint) -> bool:
    weights = load_model_state(checkpoint, read_manifest(checkpoint))
    return all(torch.isfinite(t).all() for t in weights.values())


def make_trainer(config_file, text_file, run_dir, *overrides) -> Trainer:
    raw, origin = read_config_file(config_file)
    config = resolve(raw, origin, [f"data.path={str(text_file)!r}", *SHORT, *overrides])
    return Trainer(config, run_dir, distributed.setup("cpu", "ddp"), out=io.StringIO())


class PoisonAt(nn.Module):
    """The training model, whose loss (hence every gradient) is NaN at the given steps."""

    def __init__(self, trainer: Trainer, steps: set[int]):
        super().__init__()
        self.model, self.trainer, self.steps = trainer.train_model, trainer, steps

    def forward(self, batch):
        loss = self.model(batch)
        return loss * math.nan if self.trainer.step + 1 in self.steps else loss


def poison(trainer: Trainer, *steps: int) -> Trainer:
    trainer.train_model = PoisonAt(trainer, set(steps))
    return trainer


def logged_steps(run_dir) -> list[int]:
    return [r["step"] for r in read_metrics(run_dir / METRICS_FILE) if "loss" in r]


def test_a_learning_rate_blow_up_stops_the_run_and_keeps_the_finite_checkpoints(
    cli, trained_run, tmp_path
):
    """The issue's reproduction: before, the run trained on NaN, pruned steps 20 and 40 for NaN
    checkpoints and exited 0 reporting "validation nan"."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    code, out, err = cli(
        "train",
        "--resume",
        run,
        "--set",
        "train.steps=60",
        "--set",
        "train.lr=1000.0",
        "--set",
        "train.checkpoint_every=2",
    )
    assert code == 3 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "xtransformers train: error: training diverged at step" in err
    assert f"the newest checkpoint {run}/checkpoints/step-" in err and "is finite" in err
    assert "nan bits/byte" not in out
    kept = list_checkpoints(run)
    assert kept and all(finite_weights(c) for c in kept)
    assert all(math.isfinite(r.get("loss", 0.0)) for r in read_metrics(run / METRICS_FILE))
    diverged_at = int(err.split("diverged at step ")[1].split(":")[0])
    assert logged_steps(run) == list(range(1, diverged_at))


def test_the_first_non_finite_step_stops_the_run_before_anything_is_written(
    tmp_path, config_file, text_file
):
    run = tmp_path / "run"
    trainer = poison(
        make_trainer(
            config_file, text_file, run, "train.checkpoint_every=5", "train.keep_checkpoints=1"
        ),
        7,
    )
    with pytest.raises(DivergenceError, match=r"^training diverged at step 7: loss nan") as info:
        trainer.run()
    assert f"the newest checkpoint {run}/checkpoints/step-00000005 is finite" in str(info.value)
    assert [c.name for c in list_checkpoints(run)] == ["step-00000005"]  # never pruned for NaN
    assert finite_weights(find_checkpoint(run))
    assert logged_steps(run) == [1, 2, 3, 4, 5, 6]


def test_on_accelerators_the_check_waits_for_the_next_sync_point(tmp_path, config_file, text_file):
    """With a sync point every 4 steps (an accelerator with log_every = 4) the loop reads the
    device only there, yet the error names the first non-finite step and nothing is saved."""
    run = tmp_path / "run"
    trainer = poison(make_trainer(config_file, text_file, run, "train.checkpoint_every=100"), 6)
    trainer.sync_every = 4
    synced_at = []
    real_sync = trainer._sync

    def recording_sync(pending, result):
        synced_at.append([record.step for record in pending])
        return real_sync(pending, result)

    trainer._sync = recording_sync
    with pytest.raises(DivergenceError, match=r"^training diverged at step 6: .*no checkpoint"):
        trainer.run()
    assert synced_at == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert logged_steps(run) == [1, 2, 3, 4, 5] and list_checkpoints(run) == []


def test_weights_are_checked_before_every_checkpoint(tmp_path, config_file, text_file):
    """A finite loss and gradient norm with non-finite weights (an update that overflowed) is
    caught before the checkpoint is written."""
    run = tmp_path / "run"
    trainer = make_trainer(config_file, text_file, run, "train.checkpoint_every=4")
    real_step = trainer.optimizer.step

    def overflowing_step(*args, **kwargs):
        real_step(*args, **kwargs)
        if trainer.step == 7:  # the update of step 8
            with torch.no_grad():
                next(trainer.net.parameters()).fill_(math.inf)

    trainer.optimizer.step = overflowing_step
    with pytest.raises(DivergenceError, match=r"^training diverged at step 8: the weights"):
        trainer.run()
    assert [c.name for c in list_checkpoints(run)] == ["step-00000004"]


def test_a_bounded_number_of_non_finite_steps_can_be_skipped(tmp_path, config_file, text_file):
    run = tmp_path / "run"
    trainer = poison(
        make_trainer(config_file, text_file, run, "train.skip_nonfinite_steps=2"), 3, 8
    )
    before_and_after = {}
    real_train_step = trainer.train_step

    def snapshot_step():
        if trainer.step == 2:
            before_and_after["before"] = [p.detach().clone() for p in trainer.net.parameters()]
        record = real_train_step()
        if trainer.step == 3:
            before_and_after["after"] = [p.detach().clone() for p in trainer.net.parameters()]
        return record

    trainer.train_step = snapshot_step
    result = trainer.run()
    assert result.step == 12 and result.skipped == [3, 8]
    assert all(torch.equal(a, b) for a, b in zip(*before_and_after.values()))  # no update
    assert all(int(s["step"]) == 10 for s in trainer.optimizer.state.values())  # 12 - 2 skipped
    records = read_metrics(run / METRICS_FILE)
    assert [r["step"] for r in records if r.get("skipped")] == [3, 8]
    assert logged_steps(run) == [s for s in range(1, 13) if s not in (3, 8)]
    latest = find_checkpoint(run)
    assert finite_weights(latest)
    assert load_train_state(latest, read_manifest(latest))["skipped_steps"] == 2


def test_skipping_stops_once_the_budget_is_spent(tmp_path, config_file, text_file):
    trainer = poison(
        make_trainer(config_file, text_file, tmp_path / "run", "train.skip_nonfinite_steps=2"),
        3,
        5,
        8,
    )
    with pytest.raises(DivergenceError, match=r"at step 8: .*non-finite step 3 of a run that may"):
        trainer.run()


def test_the_divergence_error_is_one_line_with_exit_status_3(cli, tmp_path, config_file, text_file):
    code, _, err = cli(
        "train",
        "--config",
        config_file,
        "--data",
        text_file,
        "--out",
        tmp_path / "run",
        "--set",
        "train.lr=100000.0",
        "--set",
        "train.warmup_steps=0",
        "--set",
        "train.checkpoint_every=1",
    )
    assert code == 3 and err.count("\n") == 1, err
    assert err.startswith("xtransformers train: error: training diverged at step")
    assert all(finite_weights(c) for c in list_checkpoints(tmp_path / "run"))
