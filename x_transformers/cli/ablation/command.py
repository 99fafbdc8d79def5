"""``xtransformers ablate``: the command line of the ablation.

    xtransformers ablate --suite default --seeds 3 --out runs/ablate-default
    xtransformers ablate --suite my_suite.toml --steps 200 --data enwik8.gz --jobs 2
    xtransformers ablate --list

Plans every (variant, seed) run, trains the missing ones (skipping finished runs, resuming partly
finished ones), then writes ``ablation.md`` (the table), ``results.json`` (every run's numbers) and
the plots into the output folder. Rerunning the same command after an interruption continues it.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from ..errors import CLIError
from ..progress import format_duration, format_rate
from . import plots
from .report import ablation_table, findings, write_report
from .runner import (
    PlannedRun,
    RunInterrupted,
    execute,
    execute_in_worker,
    plan_runs,
    run_state,
    signal_name,
)
from .stats import VariantSummary, summarize
from .suite import Suite, load_suite, read_suite, suite_names

REPORT_FILE, RESULTS_FILE = "ablation.md", "results.json"


def add_parser(commands) -> None:
    """Register ``ablate`` on the ``xtransformers`` subcommands."""
    ablate = commands.add_parser(
        "ablate", help="train a base config and one-keyword variants over seeds; table + plots"
    )
    ablate.add_argument(
        "--suite",
        default="default",
        help=f"a shipped suite ({', '.join(suite_names())}) or a suite .toml file "
        "(default: default)",
    )
    ablate.add_argument("--seeds", type=int, help="seeds per variant (default: the suite's)")
    ablate.add_argument("--steps", type=int, help="optimizer steps of every run")
    ablate.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a key of the base, and so of every variant (repeatable)",
    )
    ablate.add_argument("--data", help="text file, .gz of one, or folder (default: built-in)")
    ablate.add_argument("--out", help="output folder (default: runs/ablate-<suite>)")
    ablate.add_argument(
        "--jobs", type=int, default=1, help="runs trained at once, in separate processes"
    )
    ablate.add_argument("--list", action="store_true", help="list the shipped suites and exit")
    ablate.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    ablate.add_argument(
        "--threads",
        type=int,
        help="CPU threads per run (default: torch's choice; with --jobs N, cores / N)",
    )


def _list_suites() -> int:
    for name in suite_names():
        raw, _, _ = read_suite(name)
        variants = len(raw.get("variants", {}))
        description = raw.get("suite", {}).get("description", "")
        print(f"{name:15s} {variants + 1:3d} configurations  {description}")
    return 0


def command_line(args) -> str:
    """The command that reproduces (or continues) this ablation, from the parsed flags."""
    words = ["xtransformers", "ablate", "--suite", args.suite]
    for flag in ("seeds", "steps", "data", "out", "jobs", "device", "threads"):
        value = getattr(args, flag)
        if value is not None and not (flag == "jobs" and value == 1):
            words += [f"--{flag}", str(value)]
    for override in args.overrides:
        words += ["--set", override]
    return " ".join(shlex.quote(w) for w in words)


def command_ablate(args) -> int:
    """Run (or continue) an ablation and write its report; returns the exit status."""
    if args.list:
        return _list_suites()
    began = time.perf_counter()
    if args.seeds is not None and args.seeds < 1:
        raise CLIError(f"--seeds must be >= 1, got {args.seeds}")
    if args.jobs < 1:
        raise CLIError(f"--jobs must be >= 1, got {args.jobs}")
    suite = load_suite(args.suite, args.overrides, steps=args.steps, data=args.data)
    seeds = args.seeds or suite.settings.seeds
    out = Path(args.out or Path("runs") / f"ablate-{suite.name}")
    runs = plan_runs(suite, seeds, out)
    done = sum(run_state(run) == "done" for run in runs)
    print(
        f"suite '{suite.name}': {len(suite.variants)} configurations x {seeds} seeds = "
        f"{len(runs)} runs of {suite.base.train.steps} steps ({done} already done) in {out}",
        flush=True,
    )
    out.mkdir(parents=True, exist_ok=True)
    try:
        results = _run_all(runs, args)
    except (RunInterrupted, KeyboardInterrupt) as stop:
        number = int(stop.args[0]) if isinstance(stop, RunInterrupted) else int(signal.SIGINT)
        print(
            f"stopped by {signal_name(number)}; finished runs are kept and an unfinished one "
            f"continues from its last checkpoint. Continue with: {command_line(args)}"
        )
        return 128 + number
    rows = _write_outputs(suite, results, seeds, out, args, began)
    print(f"\n{ablation_table(rows, suite.base_name)}\n\n{findings(rows, suite.base_name)}")
    print(f"report, results and plots: {out / REPORT_FILE}, {out / RESULTS_FILE}, {out}/*.png")
    return 0


def _progress_line(index: int, total: int, run: PlannedRun, result, skipped) -> str:
    head = f"[{index:>{len(str(total))}}/{total}] {run.label}"
    if skipped:
        return f"{head}: done before, skipped"
    if result["status"] != "done":
        return f"{head}: stopped early at step {result['step']} of {result['steps']}"
    speed = result.get("tokens_per_second") or 0.0
    return (
        f"{head}: val {result['val_bpb']:.4f} bits/byte, {format_rate(speed)} tok/s, "
        f"{format_duration(result.get('wall_seconds', 0.0))}"
    )


def _run_all(runs: list[PlannedRun], args) -> list[dict]:
    """Train every run (``--jobs`` at a time); results in the order of ``runs``."""
    results: list[dict | None] = [None] * len(runs)
    if args.jobs == 1:
        for index, run in enumerate(runs):
            result, skipped = execute(run, args.device)
            results[index] = result
            print(_progress_line(index + 1, len(runs), run, result, skipped), flush=True)
        return results
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no forked torch state in the workers
    finished = 0
    with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
        pending = {
            pool.submit(execute_in_worker, run, args.device, threads): index
            for index, run in enumerate(runs)
        }
        try:
            while pending:
                complete, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in complete:
                    index = pending.pop(future)
                    result, skipped = future.result()
                    results[index] = result
                    finished += 1
                    run = runs[index]
                    print(_progress_line(finished, len(runs), run, result, skipped), flush=True)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return results


def _write_outputs(suite: Suite, results, seeds, out: Path, args, began) -> list[VariantSummary]:
    order = list(suite.variants)
    rows = summarize(results, order, suite.base_name)
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=1))
    drawn = [
        plots.plot_curves(results, order, suite.base_name, out / plots.CURVES_FILE),
        plots.plot_differences(rows, suite.base_name, out / plots.DIFFERENCES_FILE),
    ]
    if suite.settings.extrapolation:
        path = out / plots.EXTRAPOLATION_FILE
        drawn.append(plots.plot_extrapolation(results, order, suite.base_name, path))
    train = suite.base.train
    budget = (
        f"{train.steps} steps of {train.batch_size * train.grad_accum} x {suite.base.seq_len} "
        f"bytes ({train.steps * train.batch_size * train.grad_accum * suite.base.seq_len:,} "
        f"training bytes per run), lr {train.lr:g}, {seeds} seeds per configuration, data "
        f"{suite.base.data.path or 'built-in corpus'}"
    )
    write_report(
        out / REPORT_FILE,
        suite,
        rows,
        results,
        seeds,
        command_line(args),
        budget,
        time.perf_counter() - began,
        sum(r.get("wall_seconds") or 0.0 for r in results),
        [p.name for p in drawn if p is not None],
    )
    return rows
