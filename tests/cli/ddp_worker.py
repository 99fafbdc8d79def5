"""Run by ``torchrun`` in test_distributed.py: train with DDP, then save this rank's weights.

python -m torch.distributed.run --nproc_per_node 2 tests/cli/ddp_worker.py CONFIG DATA OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from x_transformers.cli import distributed
from x_transformers.cli.config import read_config_file, resolve
from x_transformers.cli.train import Trainer


def run(config_path: str, data: str, out: str) -> None:
    torch.set_num_threads(1)
    config = resolve(*read_config_file(config_path), [f"data.path={data!r}"])
    env = distributed.setup("cpu", "ddp")
    trainer = Trainer(config, Path(out) / "run", env)
    trainer.run()
    local = {k: v.detach().contiguous() for k, v in trainer.net.state_dict().items()}
    save_file(local, str(Path(out) / f"rank{env.rank}.safetensors"))
    distributed.teardown(env)  # an error above ends the process, and torchrun the others


if __name__ == "__main__":
    run(*sys.argv[1:4])
