"""The statistics of an ablation: per-variant mean and spread over seeds, and paired differences.

Runs of the same seed saw the same batches in the same order, so the difference between a variant
and the base is measured per seed (a paired design) and the seed-to-seed spread of those
differences decides whether it is beyond noise: a two-sided paired t-test at the 5% level
("Student", 1908). With ``n`` seeds it has ``n - 1`` degrees of freedom; one seed gives no spread,
hence no mark.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# two-sided 5% critical values of Student's t, by degrees of freedom
T_CRITICAL_5_PERCENT = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
    10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
    18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060,
    26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980,
}  # fmt: skip


def t_critical(degrees_of_freedom: int) -> float:
    """The 5% two-sided critical value; between tabulated values the next smaller degrees of
    freedom (a slightly stricter test), 1.96 beyond 120."""
    if degrees_of_freedom < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {degrees_of_freedom}")
    if degrees_of_freedom > 120:
        return 1.960
    return T_CRITICAL_5_PERCENT[max(d for d in T_CRITICAL_5_PERCENT if d <= degrees_of_freedom)]


def mean_and_std(values: Iterable[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1); None where there are too few values."""
    values = [float(v) for v in values]
    if not values:
        return None, None
    spread = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), spread


@dataclass(frozen=True)
class Difference:
    """A variant minus the base over the seeds both finished."""

    mean: float
    std: float | None  # of the per-seed differences
    seeds: int
    t: float | None  # mean / (std / sqrt(seeds)); None with one seed
    significant: bool | None  # |t| beyond the 5% critical value; None with one seed


def paired_difference(variant: Mapping[int, float], base: Mapping[int, float]) -> Difference | None:
    """The per-seed differences ``variant[s] - base[s]`` over the seeds present in both."""
    seeds = sorted(variant.keys() & base.keys())
    differences = [variant[s] - base[s] for s in seeds]
    average, spread = mean_and_std(differences)
    if average is None:
        return None
    if spread is None:
        return Difference(average, None, len(seeds), None, None)
    if spread == 0.0:
        t = 0.0 if average == 0.0 else math.copysign(math.inf, average)
    else:
        t = average / (spread / math.sqrt(len(seeds)))
    return Difference(average, spread, len(seeds), t, abs(t) > t_critical(len(seeds) - 1))


@dataclass(frozen=True)
class VariantSummary:
    """One row of the ablation table."""

    name: str
    params: int | None
    seeds: int  # finished runs
    stopped: int  # runs that ended before the last step (e.g. diverged)
    bpb_mean: float | None
    bpb_std: float | None
    difference: Difference | None  # None for the base
    speed_ratio: float | None  # median tokens/s over the base's median


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(
    results: list[dict[str, Any]], order: list[str], base_name: str
) -> list[VariantSummary]:
    """The table's rows, in ``order``, from run results (``variant``, ``seed``, ``status``,
    ``val_bpb``, ``tokens_per_second``, ``params``)."""
    finished: dict[str, dict[int, float]] = {name: {} for name in order}
    speeds: dict[str, list[float]] = {name: [] for name in order}
    stopped = dict.fromkeys(order, 0)
    params: dict[str, int | None] = dict.fromkeys(order)
    for result in results:
        name = result["variant"]
        if name not in finished:
            continue
        params[name] = result.get("params")
        bpb = result.get("val_bpb")
        if result.get("status") != "done" or bpb is None or not math.isfinite(bpb):
            stopped[name] += 1
            continue
        finished[name][result["seed"]] = bpb
        if result.get("tokens_per_second"):
            speeds[name].append(result["tokens_per_second"])
    base_speed = _median(speeds.get(base_name, []))
    rows = []
    for name in order:
        average, spread = mean_and_std(finished[name].values())
        difference = None
        if name != base_name:
            difference = paired_difference(finished[name], finished.get(base_name, {}))
        speed = _median(speeds[name])
        ratio = speed / base_speed if speed and base_speed else None
        rows.append(
            VariantSummary(
                name, params[name], len(finished[name]), stopped[name], average, spread,
                difference, ratio,
            )
        )  # fmt: skip
    return rows
