"""The training loop: byte-level language modelling with a library model, from a run config.

One optimizer step::

    lr = warmup/cosine(step)
    for each of grad_accum micro-batches:      (gradients all-reduced on the last only)
        batch = windows(seed, rank, step, micro)
        loss = model(batch) under bf16 autocast where supported; backward(loss / grad_accum)
    clip the gradient norm; AdamW step
    every eval_every steps: validation bits per byte and a printed sample
    every checkpoint_every steps, at the end, and on SIGINT / SIGTERM: an atomic checkpoint

Everything random is either a pure function of (seed, rank, step) (the data) or in the global RNG
whose state the checkpoint keeps (dropout, forgetful masks), so a resumed run repeats the losses
of an uninterrupted one exactly on the CPU.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import torch
from torch import nn

from . import distributed
from .checkpoint import (
    check_fits,
    load_model_state,
    load_train_state,
    read_manifest,
    save_checkpoint,
)
from .config import RunConfig, build_model, to_toml
from .data import TrainBatches, eval_windows, open_corpus, spread
from .errors import DataError
from .evaluate import LN2, decode, encode, printable, sample_text, sum_losses
from .metrics import METRICS_FILE, MetricsLog
from .optim import learning_rate, make_optimizer, set_learning_rate
from .plot import PLOT_FILE, plot_curves
from .progress import Progress
from .signals import StopSignals

PROMPT_BYTES = 64


@dataclass
class TrainResult:
    """What a training session did (returned to the command line and to tests)."""

    run_dir: Path
    step: int
    losses: list[float] = field(default_factory=list)  # this session's, one per step
    val_bpb: float | None = None
    checkpoint: Path | None = None
    stopped_by: signal.Signals | None = None


def rng_state(device: torch.device) -> dict:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


class Trainer:
    """Builds everything a run needs from its configuration, then ``run`` trains it."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        env: distributed.Environment,
        resume: Path | None = None,
        out: TextIO | None = None,
    ):
        self.config, self.settings, self.env = config, config.train, env
        self.run_dir, self.out = Path(run_dir), out or sys.stdout
        self.corpus = self._open_corpus()
        torch.manual_seed(self.settings.seed)  # the same initial weights on every rank
        self.net, self.model = build_model(config)
        self.model.to(env.device)
        self.train_model = distributed.wrap(env, self.net, self.model)
        if self.settings.compile:
            self.train_model = torch.compile(self.train_model)
        self.optimizer = make_optimizer(self.net, self.settings)
        self.batches = TrainBatches(
            self.corpus.train,
            config.seq_len,
            self.settings.batch_size,
            self.settings.seed,
            env.rank,
            env.world_size,
        )
        self.val_windows = self._validation_windows()
        self.step, self.elapsed, self.saved_step = 0, 0.0, None
        self.signals = StopSignals()
        self.metrics: MetricsLog | None = None  # rank 0 only, from the start of run()
        self.progress: Progress | None = None
        if resume is not None:
            self._restore(resume)
        else:  # dropout and masks differ per rank; the data is seeded separately
            torch.manual_seed(self.settings.seed + 1 + env.rank)

    # -------------------------------------------------------------------- setup

    def _open_corpus(self):
        window = self.config.seq_len + 1
        if self.env.is_main:  # rank 0 builds any cache file first
            corpus = open_corpus(self.config.data.path, self.config.data.val_fraction, window)
        distributed.barrier(self.env)
        if not self.env.is_main:
            corpus = open_corpus(self.config.data.path, self.config.data.val_fraction, window)
        return corpus

    def _validation_windows(self) -> list[tuple[int, int]]:
        """The same full-length windows at every validation; an equal share per rank."""
        seq_len, world = self.config.seq_len, self.env.world_size
        full = [w for w in eval_windows(len(self.corpus.val), seq_len) if w[1] == seq_len + 1]
        count = self.settings.eval_batches * self.settings.batch_size
        chosen = spread(full, max(world, count - count % world))
        chosen = chosen[: len(chosen) - len(chosen) % world]
        if not chosen:
            raise DataError(
                f"the validation split ({len(self.corpus.val)} bytes) holds {len(full)} windows "
                f"of {seq_len + 1} bytes, fewer than the {world} processes; raise "
                "data.val_fraction"
            )
        return chosen[self.env.rank :: world]

    def _restore(self, checkpoint: Path) -> None:
        manifest = read_manifest(checkpoint)
        expected = manifest.get("data", {}).get("fingerprint")
        if expected is not None and expected != self.corpus.fingerprint:
            raise DataError(
                f"the data {self.corpus.description!r} differs from the data of {checkpoint} "
                f"({manifest['data'].get('description')!r}); resume with the same --data"
            )
        weights = load_model_state(checkpoint, manifest)
        check_fits(self.net, weights, checkpoint)
        state = load_train_state(checkpoint, manifest)
        distributed.load_model_state(self.env, self.net, weights)
        distributed.load_optimizer_state(self.env, self.net, self.optimizer, state["optimizer"])
        self.step = self.saved_step = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        rng = state["rng"]
        if len(rng) == self.env.world_size:
            set_rng_state(rng[self.env.rank], self.env.device)
        else:
            self._say(
                f"note: saved with {len(rng)} processes, resumed with "
                f"{self.env.world_size}: random streams restart (losses will differ)"
            )
            torch.manual_seed(self.settings.seed + 1 + self.env.rank + self.step)

    @property
    def uses_bf16(self) -> bool:
        """``precision = "auto"`` means bf16 autocast on GPUs that support it, fp32 elsewhere."""
        precision, device = self.settings.precision, self.env.device
        auto_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return precision == "bf16" or (precision == "auto" and auto_bf16)

    def autocast(self):
        if self.uses_bf16:
            return torch.autocast(self.env.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -------------------------------------------------------------------- the loop

    def train_step(self) -> float:
        """One optimizer step; returns the mean loss of its micro-batches on this rank."""
        accum = self.settings.grad_accum
        set_learning_rate(self.optimizer, learning_rate(self.step, self.settings))
        total = torch.zeros((), device=self.env.device)
        for micro in range(accum):
            batch = self.batches.batch(self.step, micro).to(self.env.device, non_blocking=True)
            last = micro == accum - 1
            with distributed.gradient_sync(self.env, self.train_model, self.net, last):
                with self.autocast():
                    loss = self.train_model(batch)
                (loss / accum).backward()
            total += loss.detach().float()
        if self.settings.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.net.parameters(), self.settings.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return float(total) / accum

    def run(self, stop_at: int | None = None) -> TrainResult:
        """Train until ``train.steps`` (or ``stop_at``), a signal, or the end; then checkpoint."""
        total = self.settings.steps
        end = min(total, stop_at) if stop_at else total
        result = TrainResult(self.run_dir, self.step)
        if self.step >= end:
            self._say(f"nothing to do: the run is at step {self.step} of {end}")
            return result
        self._start_logs()
        self.signals.install()
        try:
            while self.step < end and result.stopped_by is None:
                loss, stop = self._timed_step()
                result.losses.append(loss)
                if self.step % self.settings.eval_every == 0 or self.step == total:
                    result.val_bpb = self.validate()
                if stop:  # on any rank: all ranks stop together
                    result.stopped_by = self.signals.received or signal.SIGTERM
                elif self.step % self.settings.checkpoint_every == 0 and self.step < end:
                    result.checkpoint = self.save()
            if self.saved_step != self.step:
                result.checkpoint = self.save()
        finally:
            self.signals.restore()
            self._close_logs()
        result.step = self.step
        return result

    def _timed_step(self) -> tuple[float, bool]:
        """A step, its loss averaged over ranks, and whether any rank received a stop signal."""
        began = time.perf_counter()
        local = [self.train_step(), float(self.signals.received is not None)]
        loss_sum, stops = distributed.all_reduce_sum(self.env, local)
        loss = loss_sum / self.env.world_size
        seconds = time.perf_counter() - began
        self.elapsed += seconds
        lr = self.optimizer.param_groups[0]["lr"]
        if self.env.is_main:
            tokens = self.tokens_per_step
            self.metrics.log(
                step=self.step,
                loss=loss,
                lr=lr,
                tokens=self.step * tokens,
                time=round(self.elapsed, 3),
            )
            self.progress.update(self.step, loss, lr, tokens, seconds)
        return loss, stops > 0

    @property
    def tokens_per_step(self) -> int:
        s = self.settings
        return s.batch_size * s.grad_accum * self.config.seq_len * self.env.world_size

    # -------------------------------------------------------------------- validation, saving

    def validate(self) -> float:
        """Validation bits per byte (all ranks), logged with a sample by rank 0."""
        total = sum_losses(
            self.model,
            self.corpus.val,
            self.val_windows,
            self.settings.batch_size,
            self.env.device,
            self.autocast(),
        )
        nats, count = distributed.all_reduce_sum(self.env, [total.nats, total.count])
        loss = nats / max(count, 1)
        bpb = loss / LN2
        if self.env.is_main:
            self.metrics.log(step=self.step, val_loss=loss, val_bpb=bpb)
            self.progress.write(f"step {self.step}: val loss {loss:.4f}  val {bpb:.4f} bits/byte")
        if self.settings.sample_length and (self.env.is_main or self.env.is_sharded):
            self._print_sample()
        return bpb

    def _print_sample(self) -> None:
        s = self.settings
        prompt = encode(s.sample_prompt) if s.sample_prompt else self.corpus.val[:PROMPT_BYTES]
        prompt = prompt.long()[-self.config.seq_len :]
        [text] = sample_text(
            self.model,
            prompt,
            s.sample_length,
            seed=s.seed + self.step,
            temperature=s.sample_temperature,
        )
        if self.env.is_main:
            shown = printable(decode(prompt) + text)
            self.progress.write(f"--- sample at step {self.step} ---\n{shown}\n---")

    def save(self) -> Path | None:
        """Gather the full state (a collective when sharded); rank 0 writes it atomically."""
        weights = distributed.model_state(self.env, self.net)
        optimizer = distributed.optimizer_state(self.env, self.net, self.optimizer)
        rng = distributed.gather_objects(self.env, rng_state(self.env.device))
        path = None
        if self.env.is_main:
            state = {
                "optimizer": optimizer,
                "rng": rng,
                "step": self.step,
                "elapsed": self.elapsed,
                "world_size": self.env.world_size,
            }
            info = {
                "config": self.config.to_dict(),
                "data": {
                    "description": self.corpus.description,
                    "fingerprint": self.corpus.fingerprint,
                },
            }
            path = save_checkpoint(
                self.run_dir, self.step, weights, state, info, self.settings.keep_checkpoints
            )
            self.progress.write(f"step {self.step}: checkpoint {path}")
        distributed.barrier(self.env)
        self.saved_step = self.step
        return path

    # -------------------------------------------------------------------- logs

    def _say(self, text: str) -> None:
        if self.env.is_main:
            print(text, file=self.out, flush=True)

    def _start_logs(self) -> None:
        if not self.env.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.toml").write_text(to_toml(self.config))
        resumed = self.saved_step
        self.metrics = MetricsLog(self.run_dir / METRICS_FILE, resume_step=resumed)
        self.progress = Progress(
            self.settings.steps, start=self.step, stream=self.out, log_every=self.settings.log_every
        )
        self._say(self.describe())

    def _close_logs(self) -> None:
        if self.metrics is None:
            return
        self.progress.close()
        self.metrics.close()
        plot_curves(self.run_dir / METRICS_FILE, self.run_dir / PLOT_FILE)

    def describe(self) -> str:
        params = sum(p.numel() for p in self.net.parameters())
        corpus, env = self.corpus, self.env
        where = f"resuming at step {self.step}" if self.step else "starting"
        device = str(env.device)
        if env.device.type == "cpu":
            threads = torch.get_num_threads()
            device += f" ({threads} thread{'s' if threads > 1 else ''})"
        processes = f"{env.world_size} processes ({env.parallel})" if env.is_distributed else ""
        lines = [
            f"{where}: {params / 1e6:.2f}M parameters on {device}{', ' if processes else ''}"
            f"{processes}, {'bf16 autocast' if self.uses_bf16 else 'fp32'}",
            f"data: {corpus.description}: {len(corpus.train):,} train / {len(corpus.val):,} "
            "validation bytes",
            f"run folder: {self.run_dir}",
        ]
        return "\n".join(lines + busy_machine_note(env.device))


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


def train(
    config: RunConfig,
    run_dir: Path,
    resume: Path | None = None,
    stop_at: int | None = None,
    device: str | None = None,
    out: TextIO | None = None,
) -> TrainResult:
    """Train a run (joining the torchrun process group when there is one)."""
    env = distributed.setup(device, config.train.parallel)
    try:
        result = Trainer(config, run_dir, env, resume=resume, out=out).run(stop_at=stop_at)
    except BaseException:
        distributed.teardown(env, synchronize=False)
        raise
    distributed.teardown(env)
    return result
