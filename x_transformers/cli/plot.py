"""A PNG of the training and validation curves, in bits per byte, when matplotlib is installed."""

from __future__ import annotations

import math
import os
from pathlib import Path

from .metrics import read_metrics

PLOT_FILE = "curves.png"


def plot_curves(metrics_path: Path, out_path: Path, smoothing: int = 20) -> Path | None:
    """Draw the curves of a metrics log; returns None (and draws nothing) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"] / math.log(2)) for r in records if "loss" in r]
    val = [(r["step"], r["val_bpb"]) for r in records if "val_bpb" in r]
    if not train:
        return None
    figure, axes = plt.subplots(figsize=(7, 4))
    steps, bits = zip(*train)
    axes.plot(steps, bits, alpha=0.3, color="tab:blue", label="train (per step)")
    window = max(1, min(smoothing, len(bits) // 10))
    smooth = [
        sum(bits[max(0, i - window + 1) : i + 1]) / len(bits[max(0, i - window + 1) : i + 1])
        for i in range(len(bits))
    ]
    axes.plot(steps, smooth, color="tab:blue", label=f"train (mean of {window})")
    if val:
        axes.plot(*zip(*val), "o-", color="tab:orange", label="validation")
    axes.set_xlabel("step")
    axes.set_ylabel("bits per byte")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    temporary = Path(out_path).with_name(f".{Path(out_path).name}.tmp.png")
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    os.replace(temporary, out_path)
    return Path(out_path)
