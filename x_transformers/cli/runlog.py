"""What a training run reports, from rank 0 only: the run folder's ``config.toml``,
``metrics.jsonl`` and ``curves.png``, and the progress line and messages on the terminal (other
ranks get a log whose every call does nothing)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

import torch

from .config import RunConfig, to_toml
from .divergence import StepRecord
from .metrics import METRICS_FILE, MetricsLog
from .plot import PLOT_FILE, plot_curves
from .progress import Progress


class RunLog:
    """The reports of one training session; ``open`` starts the files, ``close`` ends them."""

    def __init__(self, run_dir: Path, out: TextIO | None, is_main: bool):
        self.run_dir, self.out, self.is_main = Path(run_dir), out or sys.stdout, is_main
        self.metrics: MetricsLog | None = None
        self.progress: Progress | None = None

    def say(self, text: str) -> None:
        """A message before the run starts (or after it ends)."""
        if self.is_main:
            print(text, file=self.out, flush=True)

    def write(self, text: str) -> None:
        """A message during the run, above the progress line."""
        if self.progress is not None:
            self.progress.write(text)

    def open(self, config: RunConfig, step: int, resumed_step: int | None, header: str) -> None:
        """Write the resolved configuration, open the metrics (cut after ``resumed_step``, when
        resuming) and the progress line, and print ``header``."""
        if not self.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.toml").write_text(to_toml(config))
        self.metrics = MetricsLog(self.run_dir / METRICS_FILE, resume_step=resumed_step)
        settings = config.train
        self.progress = Progress(
            settings.steps, start=step, stream=self.out, log_every=settings.log_every
        )
        self.say(header)

    def step(self, record: StepRecord, loss: float, elapsed: float, tokens: int) -> None:
        """A finite step: its metrics record and the progress line (``tokens`` per step)."""
        if self.metrics is None:
            return
        self.metrics.log(
            step=record.step,
            loss=loss,
            lr=record.lr,
            tokens=record.step * tokens,
            time=round(elapsed, 3),
        )
        self.progress.update(record.step, loss, record.lr, tokens, record.seconds)

    def skipped(self, record: StepRecord, loss: float, grad_norm: float, note: str) -> None:
        """A non-finite step skipped without an update."""
        if self.metrics is None:
            return
        self.metrics.log(step=record.step, skipped=True, lr=record.lr)
        self.progress.write(
            f"step {record.step}: skipped (loss {loss:.4g}, gradient norm {grad_norm:.4g}); {note}"
        )

    def validation(self, step: int, loss: float, bpb: float) -> None:
        if self.metrics is None:
            return
        self.metrics.log(step=step, val_loss=loss, val_bpb=bpb)
        self.progress.write(f"step {step}: val loss {loss:.4f}  val {bpb:.4f} bits/byte")

    def close(self) -> None:
        if self.metrics is None:
            return
        self.progress.close()
        self.metrics.close()
        self.metrics = None
        plot_curves(self.run_dir / METRICS_FILE, self.run_dir / PLOT_FILE)

    def truncate_metrics(self, step: int) -> None:
        """Drop the metrics after ``step`` (the records of an abandoned branch)."""
        if self.is_main:
            MetricsLog(self.run_dir / METRICS_FILE, resume_step=step).close()


def busy_machine_note(device: torch.device) -> list[str]:
    """A hint when CPU threads would compete with other work: several threads on an
    oversubscribed CPU wait on each other and can run many times slower than one."""
    cores, threads = os.cpu_count() or 1, torch.get_num_threads()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if device.type != "cpu" or threads == 1 or load < cores:
        return []
    return [
        f"note: this machine is busy (load {load:.1f} on {cores} cores); "
        "--threads 1 may train much faster"
    ]


def thread_count_note(device: torch.device, saved: int | None) -> list[str]:
    """CPU kernels split their sums by thread: a resumed run repeats the losses of the
    uninterrupted one bit for bit only with the thread count the checkpoint recorded."""
    current = torch.get_num_threads()
    if device.type != "cpu" or saved is None or saved == current:
        return []
    return [
        f"note: the checkpoint was trained with {saved} CPU threads, this run uses {current}: "
        f"on the CPU a resumed run repeats the losses bit for bit only with the same count "
        f"(--threads {saved})"
    ]


def describe_run(net, corpus, env, run_dir: Path, step: int, uses_bf16: bool) -> str:
    """The lines a training session opens with: model size, device, data and run folder."""
    params = sum(p.numel() for p in net.parameters())
    where = f"resuming at step {step}" if step else "starting"
    device = str(env.device)
    if env.device.type == "cpu":
        threads = torch.get_num_threads()
        device += f" ({threads} thread{'s' if threads > 1 else ''})"
    processes = f"{env.world_size} processes ({env.parallel})" if env.is_distributed else ""
    lines = [
        f"{where}: {params / 1e6:.2f}M parameters on {device}{', ' if processes else ''}"
        f"{processes}, {'bf16 autocast' if uses_bf16 else 'fp32'}",
        f"data: {corpus.description}: {len(corpus.train):,} train / {len(corpus.val):,} "
        "validation bytes",
        f"run folder: {run_dir}",
    ]
    return "\n".join(lines + busy_machine_note(env.device))
