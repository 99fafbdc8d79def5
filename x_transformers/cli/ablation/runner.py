"""One training run per (variant, seed), each an ordinary ``xtransformers train`` run folder::

    OUT/runs/<variant>/seed-<s>/   config.toml, metrics.jsonl, curves.png, checkpoints/, train.log
                                   and result.json once the run is finished

Runs are ordered seed by seed (every variant of seed 0 first), so a partial ablation already
compares all variants. A run with a ``result.json`` is skipped; a run with checkpoints but no result
resumes from its newest checkpoint (the training loop's atomic checkpoints make that exact); a run
folder trained with another configuration is an error, never silently reused. The seed sets the
initialisation and the data order; the data order depends on nothing else (see
``data.TrainBatches``), so every variant of a seed trains on the same batches in the same order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import errors
from ..checkpoint import list_checkpoints, read_manifest
from ..config import RunConfig
from ..data import TrainBatches, open_corpus
from ..errors import CLIError
from ..metrics import METRICS_FILE, read_metrics
from ..settings import DataSettings, TrainSettings
from .extrapolation import evaluate_extrapolation
from .suite import Suite

RESULT_FILE = "result.json"
LOG_FILE = "train.log"
# a run whose loss or gradient became non-finite (where the training loop detects it)
DIVERGED = getattr(errors, "DivergenceError", ())


class RunInterrupted(Exception):
    """A run stopped on SIGINT / SIGTERM after writing its checkpoint (``args[0]``: the signal)."""


@dataclass(frozen=True)
class PlannedRun:
    """One training run of the ablation."""

    variant: str
    seed: int
    config: RunConfig
    folder: Path
    params: int
    extrapolation: tuple[int, ...] = ()
    extrapolation_windows: int = 32

    @property
    def label(self) -> str:
        return f"{self.variant} seed {self.seed}"


def plan_runs(suite: Suite, seeds: int, out: Path) -> list[PlannedRun]:
    """Every (variant, seed) run, seed-major; seed k of a run is the base's train.seed + k."""
    runs = []
    for k in range(seeds):
        for variant, config in suite.variants.items():
            seed = config.train.seed + k
            train = dataclasses.replace(config.train, seed=seed)
            named = dataclasses.replace(config, train=train, name=f"{variant}-seed{seed}")
            runs.append(
                PlannedRun(
                    variant,
                    seed,
                    named,
                    Path(out) / "runs" / variant / f"seed-{seed}",
                    suite.params[variant],
                    suite.settings.extrapolation,
                    suite.settings.extrapolation_windows,
                )
            )
    return runs


# ---------------------------------------------------------------------------- state of a run


def _normalised(config: dict[str, Any]) -> dict[str, Any]:
    """JSON-equal form, with the default of every [train] / [data] key the dict lacks: a run
    stored before the command line gained a setting was trained with its default."""
    plain = json.loads(json.dumps(config))
    for section, settings in (("train", TrainSettings), ("data", DataSettings)):
        defaults = {f.name: f.default for f in dataclasses.fields(settings)}
        plain[section] = {**json.loads(json.dumps(defaults)), **plain.get(section, {})}
    return plain


def _differences(stored: dict[str, Any], planned: dict[str, Any], shown: int = 3) -> str:
    found = []
    for section in sorted(stored.keys() | planned.keys()):
        old, new = stored.get(section, {}), planned.get(section, {})
        for key in sorted(old.keys() | new.keys()):
            was, now = old.get(key, "(unset)"), new.get(key, "(unset)")
            if was != now:
                found.append(f"{section}.{key}: {was!r} there, now {now!r}")
    return "; ".join(found[:shown]) + ("; ..." if len(found) > shown else "")


def _check_same_config(run: PlannedRun, stored: dict[str, Any], where: Path) -> None:
    planned, stored = _normalised(run.config.to_dict()), _normalised(stored)
    if stored != planned:
        raise CLIError(
            f"{where} was trained with another configuration "
            f"({_differences(stored, planned)}); choose another --out for a changed suite, "
            "or delete that run folder"
        )


def read_result(run: PlannedRun) -> dict[str, Any] | None:
    """The finished run's result, or None; a result of another configuration is an error."""
    path = run.folder / RESULT_FILE
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError:
        return None  # cut short by a crash: the run is redone from its checkpoint
    _check_same_config(run, result.get("config", {}), path)
    return result


def run_state(run: PlannedRun) -> str:
    """``"done"``, ``"partial"`` (checkpoints, no result) or ``"new"``."""
    if read_result(run) is not None:
        return "done"
    return "partial" if list_checkpoints(run.folder) else "new"


def _write_json(path: Path, value: Any) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, indent=1))
    os.replace(temporary, path)


# ---------------------------------------------------------------------------- running


def first_batch_hash(config: RunConfig) -> str:
    """SHA-256 of the first training batch a run of ``config`` draws (rank 0 of one process)."""
    corpus = open_corpus(config.data.path, config.data.val_fraction, config.seq_len + 1)
    batches = TrainBatches(corpus.train, config.seq_len, config.train.batch_size, config.train.seed)
    return hashlib.sha256(batches.batch(0, 0).numpy().tobytes()).hexdigest()


def execute(run: PlannedRun, device: str | None = None) -> tuple[dict[str, Any], bool]:
    """Train (or finish, or skip) one run; returns its result and whether it was skipped."""
    from ..train import train  # the command line's own loop

    began = time.perf_counter()
    done = read_result(run)
    if done is not None:
        return done, True
    checkpoints = list_checkpoints(run.folder)
    resume = checkpoints[-1] if checkpoints else None
    if resume is not None:
        _check_same_config(run, read_manifest(resume)["config"], resume)
    run.folder.mkdir(parents=True, exist_ok=True)
    diverged = None
    with open(run.folder / LOG_FILE, "a", encoding="utf-8") as log:
        try:
            outcome = train(run.config, run.folder, resume=resume, device=device, out=log)
        except DIVERGED as error:  # recorded as a result: rerunning would diverge again
            diverged = str(error)
            print(f"stopped: {diverged}", file=log)
    if diverged is None and outcome.stopped_by is not None:
        raise RunInterrupted(int(outcome.stopped_by))
    result = summarize(run)
    if diverged is not None:
        result.update(status="diverged", val_bpb=None, reason=diverged)
    if run.extrapolation and result["status"] == "done":
        result["extrapolation"] = _extrapolate(run, device)
    result["wall_seconds"] = time.perf_counter() - began  # of this session of the run
    _write_json(run.folder / RESULT_FILE, result)
    return result, False


def summarize(run: PlannedRun) -> dict[str, Any]:
    """The result of a trained run, from its metrics log: final validation bits per byte, the
    validation curve, and the training throughput (tokens over time spent in training steps)."""
    records = read_metrics(run.folder / METRICS_FILE)
    steps = [r for r in records if "loss" in r]
    curve = [[r["step"], r["val_bpb"]] for r in records if "val_bpb" in r]
    last = steps[-1] if steps else {"step": 0, "tokens": 0, "time": 0.0}
    total = run.config.train.steps
    finished = last["step"] >= total and bool(curve) and curve[-1][0] == total
    return {
        "variant": run.variant,
        "seed": run.seed,
        "status": "done" if finished else "stopped",
        "step": last["step"],
        "steps": total,
        "params": run.params,
        "val_bpb": curve[-1][1] if finished else None,
        "curve": curve,
        "tokens_per_second": last["tokens"] / last["time"] if last["time"] else None,
        "train_seconds": last["time"],
        "first_batch_sha256": first_batch_hash(run.config),
        # other work on the machine (1-minute load average at the end of the run)
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "config": run.config.to_dict(),
    }


def _extrapolate(run: PlannedRun, device: str | None) -> dict[str, Any]:
    from ..main import load_for_inference

    config, model, _ = load_for_inference(str(run.folder), device)
    corpus = open_corpus(config.data.path, config.data.val_fraction, config.seq_len + 1)
    target = next(model.parameters()).device
    return evaluate_extrapolation(
        model.net, corpus.val, config.seq_len, run.extrapolation, run.extrapolation_windows, target
    )


def execute_in_worker(run: PlannedRun, device: str | None, threads: int):
    """``execute`` in a worker process of ``--jobs``, with its own CPU thread count."""
    import torch

    torch.set_num_threads(threads)
    return execute(run, device)


def signal_name(number: int) -> str:
    return signal.Signals(number).name
