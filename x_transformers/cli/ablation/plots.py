"""The ablation's figures (matplotlib, part of the ``cli`` extra; skipped when it is missing):

- ``ablation-curves.png``: validation bits per byte against the step, mean over seeds, per variant;
- ``ablation-differences.png``: final difference to the base per variant, with the seed spread;
- ``extrapolation.png``: bits per byte against the position at the longest evaluation length.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from .report import bucket_means
from .stats import VariantSummary

CURVES_FILE = "ablation-curves.png"
DIFFERENCES_FILE = "ablation-differences.png"
EXTRAPOLATION_FILE = "extrapolation.png"


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(figure, plt, path: Path) -> Path:
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=90)
    plt.close(figure)
    os.replace(temporary, path)
    return path


def _style(index: int, name: str, base_name: str) -> dict:
    if name == base_name:
        return {"color": "black", "linewidth": 2.2, "zorder": 10}
    return {
        "color": f"C{index % 10}",
        "linestyle": ("-", "--", ":", "-.")[(index // 10) % 4],
        "linewidth": 1.2,
    }


def mean_curves(results, order: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """Per variant, the validation curve averaged over the seeds that reached each step."""
    sums: dict[str, dict[int, list[float]]] = {name: defaultdict(list) for name in order}
    for result in results:
        if result["variant"] in sums:
            for step, bpb in result.get("curve", []):
                sums[result["variant"]][step].append(bpb)
    return {
        name: [(step, sum(v) / len(v)) for step, v in sorted(steps.items())]
        for name, steps in sums.items()
    }


def plot_curves(results, order: Sequence[str], base_name: str, path: Path) -> Path | None:
    """Validation curves of every variant, the y axis zoomed on the second half of training."""
    plt = _pyplot()
    curves = {n: c for n, c in mean_curves(results, order).items() if c}
    if plt is None or not curves:
        return None
    figure, axes = plt.subplots(figsize=(9, 5.5))
    for index, (name, curve) in enumerate(curves.items()):
        axes.plot(*zip(*curve), label=name, **_style(index, name, base_name))
    late = [bpb for c in curves.values() for step, bpb in c if step >= c[-1][0] / 2]
    if late:
        low, high = min(late), max(late)
        margin = 0.05 * (high - low or 1.0)
        axes.set_ylim(low - margin, high + margin)
    axes.set_xlabel("step")
    axes.set_ylabel("validation bits per byte (mean over seeds)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(figure, plt, path)


def plot_differences(rows: Sequence[VariantSummary], base_name: str, path: Path) -> Path | None:
    """Horizontal bars: final difference to the base (mean over seeds, error bar = std of the
    per-seed differences), sorted; green/red where beyond the seed spread."""
    plt = _pyplot()
    shown = [r for r in rows if r.difference is not None]
    if plt is None or not shown:
        return None
    shown.sort(key=lambda r: r.difference.mean)
    figure, axes = plt.subplots(figsize=(7, 0.32 * len(shown) + 1.4))
    colors = [
        ("tab:green" if r.difference.mean < 0 else "tab:red")
        if r.difference.significant
        else "tab:gray"
        for r in shown
    ]
    errors = [r.difference.std or 0.0 for r in shown]
    positions = range(len(shown))
    axes.barh(positions, [r.difference.mean for r in shown], xerr=errors, color=colors, capsize=2)
    axes.set_yticks(list(positions), [r.name for r in shown], fontsize=8)
    axes.invert_yaxis()
    axes.axvline(0.0, color="black", linewidth=0.8)
    axes.set_xlabel(f"final validation bits per byte minus {base_name}'s (lower is better)")
    axes.grid(axis="x", alpha=0.3)
    return _save(figure, plt, path)


def _mean_buckets(runs, name: str, key: str, width: int, minus: str | None = None):
    """Bucket means over seeds of ``positions[key]`` (minus ``positions[minus]``) of a variant."""
    per_seed = []
    for run in runs:
        if run["variant"] == name:
            positions = run["extrapolation"]["positions"]
            bits = positions[key]
            if minus is not None:
                bits = [a - b for a, b in zip(bits, positions[minus])]
            per_seed.append(bucket_means(bits, width))
    return [sum(b) / len(b) for b in zip(*per_seed)]


def plot_extrapolation(results, order: Sequence[str], base_name: str, path: Path) -> Path | None:
    """Left: bits per byte against the position at the longest length. Right: the same bytes at
    the longest length minus at 1x (below zero: the longer context helps; above: the model fails
    past its training length). Buckets of a quarter of the training length, mean over seeds; a
    dashed line marks the training length; the left y axis leaves out the first bucket, whose first
    bytes have almost no context."""
    plt = _pyplot()
    runs = [r for r in results if r.get("extrapolation")]
    if plt is None or not runs:
        return None
    seq_len = runs[0]["extrapolation"]["seq_len"]
    multiples = runs[0]["extrapolation"]["multiples"]
    first, longest = str(multiples[0]), str(multiples[-1])
    width = max(1, seq_len // 4)
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    shown = []
    for index, name in enumerate(order):
        means = _mean_buckets(runs, name, longest, width)
        if not means:
            continue
        centres = [i * width + width / 2 for i in range(len(means))]
        style = _style(index, name, base_name)
        left.plot(centres, means, label=name, **style)
        right.plot(centres, _mean_buckets(runs, name, longest, width, minus=first), **style)
        shown += means[1:]
    if shown:
        margin = 0.05 * (max(shown) - min(shown) or 1.0)
        left.set_ylim(min(shown) - margin, max(shown) + margin)
    right.axhline(0.0, color="black", linewidth=0.8)
    for axes in (left, right):
        axes.axvline(seq_len, color="gray", linestyle="--", linewidth=1)
        axes.set_xlabel(f"position in the {longest}x window (the training length is {seq_len})")
        axes.grid(alpha=0.3)
    left.set_ylabel(f"bits per byte at {longest}x (mean over seeds)")
    right.set_ylabel(f"same bytes: {longest}x minus {first}x context")
    left.legend(fontsize=8)
    return _save(figure, plt, path)
