"""The ablation's Markdown report: the main table, the length-extrapolation tables, and how the
numbers were made (command, machine, budget, time)."""

from __future__ import annotations

import os
import platform
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .stats import Difference, VariantSummary, mean_and_std, paired_difference, t_critical

MARK = "*"


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def _mean_std(mean: float | None, std: float | None, signed: bool = False) -> str:
    if mean is None:
        return "—"
    text = _signed(mean) if signed else f"{mean:.4f}"
    return text + (f" ± {std:.4f}" if std is not None else "")


def _difference(difference: Difference | None) -> str:
    if difference is None:
        return "—"
    mark = f" {MARK}" if difference.significant else ""
    return _mean_std(difference.mean, difference.std, signed=True) + mark


def ablation_table(rows: Sequence[VariantSummary], base_name: str) -> str:
    """The main table: one row per variant, in suite order."""
    lines = [
        f"| variant | params | val bpb (mean ± std) | Δ vs {base_name} | tokens/s vs {base_name} |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        params = f"{row.params:,}" if row.params is not None else "—"
        bpb = _mean_std(row.bpb_mean, row.bpb_std)
        if row.stopped:
            bpb += f" ({row.stopped} of {row.seeds + row.stopped} runs diverged or stopped early)"
        difference = "—" if row.name == base_name else _difference(row.difference)
        speed = f"{row.speed_ratio:.2f}×" if row.speed_ratio is not None else "—"
        lines.append(f"| {row.name} | {params} | {bpb} | {difference} | {speed} |")
    return "\n".join(lines)


def legend(seeds: int) -> str:
    """What the columns and the mark mean."""
    if seeds > 1:
        test = (
            f"`{MARK}`: beyond the seed spread — a two-sided paired t-test over the {seeds} seeds "
            f"(runs of one seed saw the same batches) at the 5% level, |t| > "
            f"{t_critical(seeds - 1):.3f}."
        )
    else:
        test = "One seed: no spread, so no difference is marked."
    return (
        "val bpb: validation bits per byte at the last step (lower is better), mean ± sample "
        "standard deviation over seeds. Δ: the per-seed difference to the base, mean ± std. "
        f"{test} tokens/s: median training throughput over seeds, relative to the base's."
    )


def findings(rows: Sequence[VariantSummary], base_name: str) -> str:
    """One line naming the differences beyond the seed spread, better first."""
    marked = [r for r in rows if r.difference is not None and r.difference.significant]
    better = sorted((r for r in marked if r.difference.mean < 0), key=lambda r: r.difference.mean)
    worse = sorted((r for r in marked if r.difference.mean > 0), key=lambda r: -r.difference.mean)

    def listed(group):
        return ", ".join(f"{r.name} ({_signed(r.difference.mean)})" for r in group) or "none"

    return (
        f"Beyond the seed spread: better than {base_name}: {listed(better)}; "
        f"worse: {listed(worse)}."
    )


def load_note(results: Sequence[dict[str, Any]]) -> str | None:
    """How busy the machine was: throughput ratios only compare techniques on a quiet machine."""
    loads = [r["load_average"] for r in results if r.get("load_average") is not None]
    if not loads:
        return None
    cores = os.cpu_count() or 1
    verdict = (
        "other work shared the CPU, so the tokens/s column reflects the machine's load as much "
        "as the techniques"
        if max(loads) > cores
        else "no more runnable work than cores, so the tokens/s column compares the techniques"
    )
    return (
        f"Load: the 1-minute load average at the end of the runs ranged from {min(loads):.1f} "
        f"to {max(loads):.1f} on {cores} cores: {verdict}."
    )


def data_order_check(results: Sequence[dict[str, Any]]) -> str:
    """Whether every variant of a seed drew the same first batch (a hash stored per run)."""
    hashes: dict[int, set[str]] = defaultdict(set)
    for result in results:
        if result.get("first_batch_sha256"):
            hashes[result["seed"]].add(result["first_batch_sha256"])
    differing = sorted(seed for seed, found in hashes.items() if len(found) > 1)
    if differing:
        return f"Data order: the first batches DIFFER between variants for seeds {differing}."
    return "Data order: every variant of a seed drew the same first batch (SHA-256 per run)."


# ---------------------------------------------------------------------------- extrapolation


def _by_variant(results, order) -> dict[str, dict[int, dict]]:
    runs: dict[str, dict[int, dict]] = {name: {} for name in order}
    for result in results:
        if result.get("extrapolation") and result["variant"] in runs:
            runs[result["variant"]][result["seed"]] = result["extrapolation"]
    return runs


def bucket_means(bits: Sequence[float], width: int) -> list[float]:
    """Means of consecutive ``width`` positions (the last bucket may be shorter)."""
    return [sum(bits[i : i + width]) / len(bits[i : i + width]) for i in range(0, len(bits), width)]


def extrapolation_tables(results, order: Sequence[str], multiples: Sequence[int]) -> str:
    """Bits per byte at each multiple of the training length, the change from 1x to the longest
    (paired per run), and bits per byte per training-length bucket at the longest length."""
    runs = _by_variant(results, order)
    seq_len = next((e["seq_len"] for v in runs.values() for e in v.values()), None)
    if seq_len is None:
        return "(no extrapolation results yet)"
    first, last = str(multiples[0]), str(multiples[-1])
    header = " | ".join(f"{m}× ({m * seq_len})" for m in multiples)
    lines = [
        f"| variant | {header} | {last}× − {first}× |",
        "|---|" + "---:|" * (len(multiples) + 1),
    ]
    for name in order:
        seeds = runs[name]
        cells = [
            _mean_std(*mean_and_std(e["bpb"][str(m)] for e in seeds.values())) for m in multiples
        ]
        change = paired_difference(
            {s: e["bpb"][last] for s, e in seeds.items()},
            {s: e["bpb"][first] for s, e in seeds.items()},
        )
        lines.append(f"| {name} | {' | '.join(cells)} | {_difference(change)} |")
    buckets = int(last)
    names = [f"{i * seq_len}–{(i + 1) * seq_len - 1}" for i in range(buckets)]
    lines += [
        "",
        f"Bits per byte by position in the {last}× windows (buckets of the training length "
        f"{seq_len}; the first bucket has the same context at every length):",
        "",
        "| variant | " + " | ".join(names) + " |",
        "|---|" + "---:|" * buckets,
    ]
    for name in order:
        per_seed = [bucket_means(e["positions"][last], seq_len) for e in runs[name].values()]
        cells = [_mean_std(*mean_and_std(b[i] for b in per_seed)) for i in range(buckets)]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    if buckets > 1:
        lines += [
            "",
            f"The same bytes with {last}× minus {first}× context, by position bucket (past the "
            f"first bucket the {first}× windows restart their context every "
            f"{int(first) * seq_len} bytes; negative: the longer context helps):",
            "",
            "| variant | " + " | ".join(names[1:]) + " |",
            "|---|" + "---:|" * (buckets - 1),
        ]
        for name in order:
            seeds = runs[name]
            longer = {s: bucket_means(e["positions"][last], seq_len) for s, e in seeds.items()}
            shorter = {s: bucket_means(e["positions"][first], seq_len) for s, e in seeds.items()}
            cells = [
                _difference(
                    paired_difference(
                        {s: b[i] for s, b in longer.items()}, {s: b[i] for s, b in shorter.items()}
                    )
                )
                for i in range(1, buckets)
            ]
            lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the report


def machine_description() -> str:
    """CPU model, cores, Python and torch versions, threads."""
    import torch

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} cores; {platform.system()} {platform.release()}; Python "
        f"{platform.python_version()}, torch {torch.__version__}"
    )


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def write_report(
    path: Path,
    suite,
    rows: Sequence[VariantSummary],
    results: Sequence[dict[str, Any]],
    seeds: int,
    command: str,
    settings_line: str,
    wall_seconds: float,
    run_seconds: float,
    plots: Sequence[str],
) -> str:
    """Write ``ablation.md`` and return its text."""
    order = list(suite.variants)
    parts = [f"# Ablation: suite '{suite.name}'", ""]
    if suite.settings.description:
        parts += [suite.settings.description, ""]
    parts += [
        f"Command: `{command}`",
        "",
        f"Budget: {settings_line}",
        "",
        f"Machine: {machine_description()}",
        "",
        f"Time: {format_duration(wall_seconds)} of wall-clock for this invocation of the "
        f"command; the runs took {format_duration(run_seconds)} of wall-clock summed over all "
        "runs (training, validation and evaluation; runs finished by an earlier invocation "
        "included).",
        "",
        ablation_table(rows, suite.base_name),
        "",
        legend(seeds),
        "",
        *([load_note(results), ""] if load_note(results) else []),
        findings(rows, suite.base_name),
        "",
        data_order_check(results),
        "",
    ]
    if suite.settings.extrapolation:
        parts += [
            "## Length extrapolation",
            "",
            extrapolation_tables(results, order, suite.settings.extrapolation),
            "",
        ]
    parts += [f"![{name}]({name})" for name in plots]
    text = "\n".join(parts).rstrip() + "\n"
    path.write_text(text, encoding="utf-8")
    return text
