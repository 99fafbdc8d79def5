"""Finiteness of a training run: the numbers of each step, read without stalling the device, and
the checks that keep a diverging run from writing (and then keeping) NaN checkpoints.

A step's loss and gradient norm stay on the device as a :class:`StepRecord` until the loop's next
sync point (every step on the CPU, where reading them is free; every ``log_every`` steps on
accelerators, so the host never waits for the device in between; always before a validation or
a checkpoint). There :func:`read_steps` fetches all pending numbers in one transfer and one
collective, and the loop stops at the first non-finite one. Before every checkpoint the weights
themselves are checked (:func:`weights_finite`), so a finite loss followed by an overflowing
update is caught too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from . import distributed
from .checkpoint import list_checkpoints, step_of


@dataclass
class StepRecord:
    """One optimizer step whose numbers may still be on the device until the next sync point."""

    step: int
    loss: Tensor  # () mean loss of the step's micro-batches on this rank
    grad_norm: Tensor  # () global gradient norm before clipping
    lr: float
    seconds: float = 0.0  # host time of the step; on accelerators the device time of the
    #                       steps since the last sync point shows up in the last one
    skipped: bool = False  # non-finite, and no update was made (train.skip_nonfinite_steps)


def clip_gradients(net: nn.Module, grad_clip: float) -> Tensor:
    """Clip the global gradient norm to ``grad_clip`` (0: no clipping, the norm is still
    measured) and return the norm before clipping, on the device."""
    norm = nn.utils.clip_grad_norm_(net.parameters(), grad_clip if grad_clip > 0 else math.inf)
    if hasattr(norm, "full_tensor"):  # a DTensor under FSDP2
        norm = norm.full_tensor()
    return norm.detach().float()


def weights_finite(net: nn.Module) -> Tensor:
    """() bool: every parameter of this process (its shards under FSDP2) is finite."""
    local = [p.to_local() if hasattr(p, "to_local") else p for p in net.parameters()]
    return torch.stack([torch.isfinite(p.detach()).all() for p in local]).all()


def holds_everywhere(env: distributed.Environment, ok: Tensor) -> bool:
    """Whether ``ok`` (a () bool tensor) holds on every rank: a host sync and a collective."""
    failures = distributed.all_reduce_sum(env, [0.0 if bool(ok) else 1.0])
    return failures[0] == 0


def read_steps(
    env: distributed.Environment, pending: list[StepRecord], signalled: bool
) -> tuple[list[tuple[float, float]], bool]:
    """(loss, gradient norm) of each pending step, averaged over ranks, and whether any rank
    received a stop signal: one device-to-host transfer and one collective for all of them."""
    numbers = torch.stack([torch.stack([r.loss, r.grad_norm]) for r in pending])  # (s, 2)
    local = [*numbers.double().cpu().flatten().tolist(), float(signalled)]
    *summed, stops = distributed.all_reduce_sum(env, local)
    world = env.world_size
    pairs = [(summed[2 * i] / world, summed[2 * i + 1] / world) for i in range(len(pending))]
    return pairs, stops > 0


def resume_advice(run_dir: Path, may_skip: bool) -> str:
    """The end of a divergence error: which checkpoint is the last finite state, and what to
    change before resuming it."""
    advice = "with a lower train.lr or more train.warmup_steps"
    if may_skip:
        advice += ", or let the run skip a few such steps with train.skip_nonfinite_steps=N"
    found = list_checkpoints(run_dir)
    if not found:
        return f"no checkpoint was written; start again {advice}"
    return (
        f"nothing was saved after step {step_of(found[-1])}: the newest checkpoint "
        f"{found[-1]} is finite; resume it (--resume {run_dir}) {advice}"
    )
