"""The training loop: byte-level language modelling with a library model, from a run config.

One optimizer step::

    lr = warmup/cosine(step)
    for each of grad_accum micro-batches:      (gradients all-reduced on the last only)
        batch = windows(seed, rank, step, micro)
        loss = model(batch) under bf16 autocast where supported; backward(loss / grad_accum)
    clip the gradient norm; AdamW step (skipped when the step is non-finite and
        train.skip_nonfinite_steps allows it)
    every eval_every steps: validation bits per byte and a printed sample
    every checkpoint_every steps, at the end, and on SIGINT / SIGTERM: an atomic checkpoint

The loss and gradient norm of each step stay on the device until a sync point (see
``divergence.py``), where they are logged and checked: a non-finite loss or gradient norm stops
the run with a :class:`DivergenceError` (exit status 3) before anything is written, so the newest
checkpoint stays the last finite state and is never pruned for a NaN one.

Everything random is either a pure function of (seed, rank, step) (the data) or in the global RNG
whose state the checkpoint keeps (dropout, forgetful masks), so a resumed run repeats the losses
of an uninterrupted one exactly on the CPU.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import torch

from . import distributed
from .checkpoint import (
    check_fits,
    check_newest,
    checkpoint_info,
    discard_checkpoints,
    load_model_state,
    load_train_state,
    read_manifest,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .config import RunConfig, build_model
from .data import TrainBatches, eval_windows, open_corpus, spread
from .divergence import (
    StepRecord,
    clip_gradients,
    holds_everywhere,
    read_steps,
    resume_advice,
    weights_finite,
)
from .errors import DataError, DivergenceError
from .evaluate import LN2, sum_losses, training_sample
from .optim import learning_rate, make_optimizer, set_learning_rate
from .runlog import RunLog, describe_run, thread_count_note
from .signals import StopSignals


@dataclass
class TrainResult:
    """What a training session did (returned to the command line and to tests)."""

    run_dir: Path
    step: int
    losses: list[float] = field(default_factory=list)  # this session's, one per updated step
    val_bpb: float | None = None
    checkpoint: Path | None = None
    stopped_by: signal.Signals | None = None
    skipped: list[int] = field(default_factory=list)  # steps skipped as non-finite


class Trainer:
    """Builds everything a run needs from its configuration, then ``run`` trains it."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        env: distributed.Environment,
        resume: Path | None = None,
        out: TextIO | None = None,
        discard_newer: bool = False,
    ):
        self.config, self.settings, self.env = config, config.train, env
        self.run_dir = Path(run_dir)
        self.log = RunLog(self.run_dir, out, env.is_main)
        self.newer = check_newest(resume, discard_newer) if resume is not None else []
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
        self.skipped_steps = 0  # non-finite steps skipped over the whole run (saved)
        # reading device values makes the host wait: every step only where that costs nothing
        # (the CPU) or happens anyway (skipping decides before each update)
        free = env.device.type == "cpu" or self.settings.skip_nonfinite_steps > 0
        self.sync_every = 1 if free else self.settings.log_every
        self.signals = StopSignals()
        if resume is not None:
            self._restore(resume)
        else:  # dropout and masks differ per rank; the data is seeded separately
            torch.manual_seed(self.settings.seed + 1 + env.rank)

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
        self.skipped_steps = int(state.get("skipped_steps", 0))
        for note in thread_count_note(self.env.device, manifest.get("runtime", {}).get("threads")):
            self.log.say(note)
        rng = state["rng"]
        if len(rng) == self.env.world_size:
            set_rng_state(rng[self.env.rank], self.env.device)
        else:
            self.log.say(
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

    def train_step(self) -> StepRecord:
        """One optimizer step; its loss and gradient norm stay on the device (no host sync,
        unless ``skip_nonfinite_steps`` needs the verdict before the update)."""
        accum = self.settings.grad_accum
        lr = learning_rate(self.step, self.settings)
        set_learning_rate(self.optimizer, lr)
        total = torch.zeros((), device=self.env.device)
        for micro in range(accum):
            batch = self.batches.batch(self.step, micro).to(self.env.device, non_blocking=True)
            last = micro == accum - 1
            with distributed.gradient_sync(self.env, self.train_model, self.net, last):
                with self.autocast():
                    loss = self.train_model(batch)
                (loss / accum).backward()
            total += loss.detach().float()
        loss = total / accum
        grad_norm = clip_gradients(self.net, self.settings.grad_clip)
        finite = torch.isfinite(loss) & torch.isfinite(grad_norm)
        skip = self.settings.skip_nonfinite_steps > 0 and not holds_everywhere(self.env, finite)
        if skip:
            self._count_skipped(self.step + 1, loss, grad_norm)
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return StepRecord(self.step, loss, grad_norm, lr, skipped=skip)

    def _count_skipped(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self.skipped_steps += 1
        limit = self.settings.skip_nonfinite_steps
        if self.skipped_steps > limit:
            raise DivergenceError(
                f"training diverged at step {step}: loss {float(loss):.4g}, gradient norm "
                f"{float(grad_norm):.4g}, non-finite step {self.skipped_steps} of a run that "
                f"may skip {limit} (train.skip_nonfinite_steps); {self._advice()}"
            )

    def run(self, stop_at: int | None = None) -> TrainResult:
        """Train until ``train.steps`` (or ``stop_at``), a signal, or the end; then checkpoint."""
        total = self.settings.steps
        end = min(total, stop_at) if stop_at else total
        result = TrainResult(self.run_dir, self.step)
        self._discard_newer()
        if self.step >= end:
            self.log.say(f"nothing to do: the run is at step {self.step} of {end}")
            return result
        self.log.open(self.config, self.step, self.saved_step, self.describe())
        self.signals.install()
        pending: list[StepRecord] = []
        try:
            while self.step < end and result.stopped_by is None:
                pending.append(self._timed_step())
                validate = self.step % self.settings.eval_every == 0 or self.step == total
                checkpoint = self.step % self.settings.checkpoint_every == 0 and self.step < end
                if not (validate or checkpoint or self.step >= end or self._sync_due()):
                    continue
                stop = self._sync(pending, result)  # raises DivergenceError
                pending = []
                if validate:
                    result.val_bpb = self.validate()
                if stop:  # on any rank: all ranks stop together
                    result.stopped_by = self.signals.received or signal.SIGTERM
                elif checkpoint:
                    result.checkpoint = self.save()
            if self.saved_step != self.step:
                result.checkpoint = self.save()
        finally:
            self.signals.restore()
            self.log.close()
        result.step = self.step
        return result

    def _sync_due(self) -> bool:
        """A sync point: every ``sync_every`` steps, or at once for a signal in one process (with
        several, every rank must reach the same sync points)."""
        signalled = self.signals.received is not None and not self.env.is_distributed
        return self.step % self.sync_every == 0 or signalled

    def _timed_step(self) -> StepRecord:
        began = time.perf_counter()
        record = self.train_step()
        record.seconds = time.perf_counter() - began
        return record

    def _sync(self, pending: list[StepRecord], result: TrainResult) -> bool:
        """Read the pending steps' numbers, log them, and stop the run at the first non-finite
        one; returns whether any rank received a stop signal."""
        began = time.perf_counter()
        numbers, stop = read_steps(self.env, pending, self.signals.received is not None)
        pending[-1].seconds += time.perf_counter() - began  # the wait for the device
        for record, (loss, grad_norm) in zip(pending, numbers):
            self.elapsed += record.seconds
            if record.skipped:
                result.skipped.append(record.step)
                limit = self.settings.skip_nonfinite_steps
                used = f"{self.skipped_steps} of train.skip_nonfinite_steps={limit} used"
                self.log.skipped(record, loss, grad_norm, used)
            elif not (math.isfinite(loss) and math.isfinite(grad_norm)):
                raise DivergenceError(
                    f"training diverged at step {record.step}: loss {loss:.4g}, gradient norm "
                    f"{grad_norm:.4g} (lr {record.lr:.2e}); {self._advice()}"
                )
            else:
                result.losses.append(loss)
                self.log.step(record, loss, self.elapsed, self.tokens_per_step)
        return stop

    def _advice(self) -> str:
        return resume_advice(self.run_dir, may_skip=not self.settings.skip_nonfinite_steps)

    @property
    def tokens_per_step(self) -> int:
        s = self.settings
        return s.batch_size * s.grad_accum * self.config.seq_len * self.env.world_size

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
        self.log.validation(self.step, loss, bpb)
        if self.settings.sample_length and (self.env.is_main or self.env.is_sharded):
            self._print_sample()
        return bpb

    def _print_sample(self) -> None:
        model, s, seq_len = self.model, self.settings, self.config.seq_len
        shown = training_sample(model, s, self.corpus.val, seq_len, self.step)
        if self.env.is_main:
            self.log.write(f"--- sample at step {self.step} ---\n{shown}\n---")

    def save(self) -> Path | None:
        """Gather the full state (a collective when sharded); rank 0 writes it atomically. Called
        at sync points only, so every step since the last checkpoint was checked finite; the
        weights are checked too, so a checkpoint never holds a NaN."""
        if not holds_everywhere(self.env, weights_finite(self.net)):
            raise DivergenceError(
                f"training diverged at step {self.step}: the weights hold non-finite values; "
                f"{self._advice()}"
            )
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
                "skipped_steps": self.skipped_steps,
            }
            info = checkpoint_info(self.config.to_dict(), self.corpus, self.env)
            path = save_checkpoint(
                self.run_dir, self.step, weights, state, info, self.settings.keep_checkpoints
            )
            self.log.write(f"step {self.step}: checkpoint {path}")
        distributed.barrier(self.env)
        self.saved_step = self.step
        return path

    def _discard_newer(self) -> None:
        """Delete the checkpoints of the branch a ``--discard-newer`` resume abandons, and the
        metrics after the resumed step (rank 0)."""
        if not self.newer or not self.env.is_main:
            return
        discard_checkpoints(self.newer)
        self.log.truncate_metrics(self.saved_step)
        names = ", ".join(p.name for p in self.newer)
        self.log.say(
            f"discarded the newer checkpoints {names} and the metrics after step "
            f"{self.saved_step}: the run continues from step {self.saved_step}"
        )
        self.newer = []

    def describe(self) -> str:
        return describe_run(
            self.net, self.corpus, self.env, self.run_dir, self.step, self.uses_bf16
        )


def train(
    config: RunConfig,
    run_dir: Path,
    resume: Path | None = None,
    stop_at: int | None = None,
    device: str | None = None,
    out: TextIO | None = None,
    discard_newer: bool = False,
) -> TrainResult:
    """Train a run (joining the torchrun process group when there is one). Resuming from a
    checkpoint that is not the run's newest needs ``discard_newer``, which deletes the newer
    checkpoints and the metrics after it."""
    env = distributed.setup(device, config.train.parallel)
    try:
        trainer = Trainer(config, run_dir, env, resume=resume, out=out, discard_newer=discard_newer)
        result = trainer.run(stop_at=stop_at)
    except BaseException:
        distributed.teardown(env, synchronize=False)
        raise
    distributed.teardown(env)
    return result
