"""Multi-process training under ``torchrun``: process group, model wrapping, state gathering.

- ``ddp``: DistributedDataParallel ("PyTorch Distributed", 2006.15704): every rank holds the
  whole model; gradients are all-reduced.
- ``fsdp``: FSDP2 (``torch.distributed.fsdp.fully_shard``; "PyTorch FSDP", 2304.11277): every
  block's parameters, gradients and optimizer state are sharded across ranks, for models that do
  not fit one device.

The backend is NCCL on GPUs and gloo on CPUs. A single process (no ``WORLD_SIZE``) needs no
process group and every helper here degrades to the identity. Checkpoints always hold the full,
unsharded state (gathered to rank 0), so a run saved with one layout resumes with another.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..weight_layout import store_row_major
from .errors import CLIError


@dataclass(frozen=True)
class Environment:
    """Where this process sits: its rank among ``world_size`` and its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    parallel: str = "ddp"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_sharded(self) -> bool:
        return self.is_distributed and self.parallel == "fsdp"


def pick_device(requested: str | None, local_rank: int = 0) -> torch.device:
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise CLIError(f"--device {requested}: CUDA is not available on this machine")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(requested_device: str | None, parallel: str) -> Environment:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Environment(device=pick_device(requested_device), parallel=parallel)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Environment(rank, local_rank, world_size, device, parallel)


def teardown(env: Environment, synchronize: bool = True) -> None:
    """Leave the process group, together after a clean run: a rank that destroys it while another
    still uses it (rank 0 writing logs) can abort in gloo's teardown. After an error there is no
    barrier, since the other ranks may never reach it."""
    if env.is_distributed and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def wrap(env: Environment, net: nn.Module, model: nn.Module) -> nn.Module:
    """The module to train: ``model`` itself, in DDP, or with ``net`` sharded in place (FSDP2:
    each block is one unit, then the whole net)."""
    if not env.is_distributed:
        return model
    if env.parallel == "ddp":
        device_ids = [env.device.index] if env.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    from torch.distributed.fsdp import fully_shard

    store_row_major(net)  # FSDP2 shards contiguous parameters only
    for block in net.attn_layers.blocks:
        fully_shard(block)
    fully_shard(net)
    return model


def gradient_sync(env: Environment, train_model: nn.Module, net: nn.Module, enabled: bool):
    """A context in which backward all-reduces gradients only when ``enabled`` (gradient
    accumulation skips the communication of the micro-batches before the last)."""
    if not env.is_distributed:
        return contextlib.nullcontext()
    if env.parallel == "fsdp":
        net.set_requires_gradient_sync(enabled)
        return contextlib.nullcontext()
    return contextlib.nullcontext() if enabled else train_model.no_sync()


def all_reduce_sum(env: Environment, values: list[float]) -> list[float]:
    if not env.is_distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_objects(env: Environment, obj) -> list:
    if not env.is_distributed:
        return [obj]
    gathered = [None] * env.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(env: Environment) -> None:
    if env.is_distributed:
        dist.barrier()


def _full_options(**extra):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **extra)


def model_state(env: Environment, net: nn.Module) -> dict:
    """The full weights of ``net`` on the CPU (on rank 0 only, when sharded)."""
    if not env.is_sharded:
        return {name: t.detach().cpu() for name, t in net.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(net, options=_full_options(cpu_offload=True))


def optimizer_state(env: Environment, net: nn.Module, optimizer) -> dict:
    """The full optimizer state keyed by parameter name (the same layout for every mode)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = _full_options(cpu_offload=True) if env.is_sharded else StateDictOptions()
    return get_optimizer_state_dict(net, optimizer, options=options)


def load_model_state(env: Environment, net: nn.Module, state: dict) -> None:
    if not env.is_sharded:
        net.load_state_dict(state, strict=True)
        return
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(net, state, options=_full_options())


def load_optimizer_state(env: Environment, net: nn.Module, optimizer, state: dict) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    options = _full_options() if env.is_sharded else StateDictOptions()
    set_optimizer_state_dict(net, optimizer, state, options=options)
