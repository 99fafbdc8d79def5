"""AdamW with weight decay on matrices only, and a warmup + cosine learning-rate schedule.

AdamW: "Decoupled Weight Decay Regularization" (1711.05101). Cosine decay: "SGDR" (1608.03983),
here a single half-period from ``lr`` down to ``min_lr_ratio * lr``, after a linear warmup.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .settings import TrainSettings


def learning_rate(step: int, settings: TrainSettings) -> float:
    """The learning rate of optimizer step ``step`` (0-based): ``lr * (step + 1) / warmup`` during
    the warmup, then cosine from ``lr`` to ``min_lr_ratio * lr`` at the last step."""
    peak, warmup, total = settings.lr, settings.warmup_steps, settings.steps
    if step < warmup:
        return peak * (step + 1) / warmup
    floor = peak * settings.min_lr_ratio
    decay_steps = max(total - warmup - 1, 1)
    progress = min((step - warmup) / decay_steps, 1.0)
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))


def make_optimizer(net: nn.Module, settings: TrainSettings) -> torch.optim.AdamW:
    """AdamW over ``net``; matrices (ndim >= 2: linear weights, embeddings) are decayed, vectors
    (biases, norm gains, scalars) are not."""
    params = [p for p in net.parameters() if p.requires_grad]
    decayed = [p for p in params if p.ndim >= 2]
    kept = [p for p in params if p.ndim < 2]
    groups = [
        {"params": decayed, "weight_decay": settings.weight_decay},
        {"params": kept, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]],
        lr=settings.lr,
        betas=tuple(settings.betas),
    )


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
