"""Shared helpers for the benchmarks: flags, device/dtype setup, timing, memory.

Timing: every callable is warmed up, then the callables are run in interleaved
rounds (the order is reversed on every other round so neither side always runs
first), with ``torch.cuda.synchronize()`` around each call on CUDA. We report
the median of the per-call wall times, and ratios as the median over rounds of
the per-round ratio (paired, so load from other processes mostly cancels).

Peak memory:
* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``,
  i.e. the peak of tensors allocated by PyTorch during a few calls of one model.
* CPU: the peak resident set size of a fresh child process (``multiprocessing``
  spawn) that builds one model and runs a few calls. It is read from ``VmHWM`` in
  ``/proc/self/status``; ``resource.getrusage(...).ru_maxrss`` is only the
  fallback because on Linux it keeps the parent's high-water mark across the
  fork+exec that starts the child. The figure includes the interpreter + torch
  baseline, so we also report it minus the peak of a child that only imports.
"""

import argparse
import contextlib
import multiprocessing as mp
import resource
import statistics
import time

import torch

# the library's keywords of each feature set of reference.FEATURE_SETS:
# (Decoder keywords, TransformerWrapper keywords)
MODERN_LAYERS = {
    "rotary_pos_emb": True,
    "use_rmsnorm": True,
    "ff_swish": True,
    "ff_glu": True,
    "attn_qk_norm": True,
}
OURS = {
    "off": ({}, {}),
    "rotary": ({"rotary_pos_emb": True}, {"use_abs_pos_emb": False}),
    "modern": (MODERN_LAYERS, {"use_abs_pos_emb": False}),
}


def build_ours(features, num_tokens, max_seq_len, dim, depth, heads):
    """Our ``TransformerWrapper`` + ``Decoder`` with the feature set ``features`` (a key of
    ``OURS``), the same model as ``reference.ReferenceGPT(..., **FEATURE_SETS[features])``."""
    import sys
    from pathlib import Path

    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the x_transformers checkout
    from x_transformers import Decoder, TransformerWrapper

    layers, wrapper = OURS[features]
    return TransformerWrapper(
        num_tokens=num_tokens,
        max_seq_len=max_seq_len,
        attn_layers=Decoder(dim=dim, depth=depth, heads=heads, **layers),
        **wrapper,
    )


def copy_weights(source, target):
    """Copy ``source``'s parameters into ``target`` in registration order (ours and the reference
    register the same tensors in the same order); the shapes must agree one by one."""
    sources, targets = list(source.parameters()), list(target.parameters())
    if len(sources) != len(targets):
        raise ValueError(f"parameter lists differ: {len(sources)} vs {len(targets)} tensors")
    pairs = list(zip(sources, targets))
    with torch.no_grad():
        for a, b in pairs:
            if a.shape != b.shape:
                raise ValueError(f"parameter shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
            b.copy_(a)


def common_parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="bfloat16 runs the model under torch.autocast",
    )
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--max-seq-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--compile", action="store_true", help="torch.compile both models")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    p.add_argument(
        "--features",
        choices=list(OURS),
        default="off",
        help="feature set of both models (reference.FEATURE_SETS): off = learned positions, "
        "LayerNorm, GELU; rotary; modern = rotary, RMSNorm, SwiGLU, qk-norm",
    )
    p.add_argument("--modern", action="store_const", const="modern", dest="features")
    p.add_argument(
        "--row-major-weights",
        action="store_true",
        help="store our linear weights row-major, as nn.Linear does (x_transformers.weight_layout;"
        " train_step.py): to measure what the input-major layout changes",
    )
    return p


def setup(args):
    """Apply global settings; return (device, autocast context factory)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    device = torch.device(args.device)

    def autocast():
        if args.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    return device, autocast


def describe(args):
    print(
        f"torch {torch.__version__}, device {args.device}, dtype {args.dtype}, "
        f"threads {torch.get_num_threads()}, compile {args.compile}"
    )


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_interleaved(fns, device, warmup, repeats):
    """fns: {name: zero-arg callable}. Returns {name: [seconds per call]}."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            sync(device)
            t0 = time.perf_counter()
            fns[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def median(xs):
    return statistics.median(xs)


def paired_ratio(a, b):
    """Median over rounds of a[i] / b[i]: each pair ran back to back, so a slow spell of a
    busy machine mostly cancels out (more robust than a ratio of medians)."""
    return statistics.median(x / y for x, y in zip(a, b))


def matmul_peak_flops(device, dtype=torch.float32, size=1024, repeats=10) -> float:
    """FLOP/s of a square matmul, the best of ``repeats`` (the denominator of the MFU)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def mib(n_bytes):
    return n_bytes / 2**20


def cuda_peak_memory(fn, calls=2):
    """Peak bytes allocated by PyTorch on CUDA while running ``fn`` a few times."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def peak_rss_bytes():
    """This process's peak RSS: VmHWM on Linux, else ru_maxrss (KiB on Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(task, args, name):
    torch.manual_seed(args.seed)
    if task is not None:
        task(args, name)
    return peak_rss_bytes()


def cpu_peak_rss(task, args, name):
    """Peak RSS (bytes) of a fresh process running ``task(args, name)``.

    ``task`` must be a module-level function (it is pickled to the child).
    With ``task=None`` the child only imports modules: that is the baseline.
    """
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_child, (task, args, name))


def peak_memory_report(names, task, args, cuda_fns=None):
    """Print one peak-memory line per model name and return {name: bytes}: on CUDA the peak
    allocated bytes, on CPU the peak RSS above the import-only baseline. ``cuda_fns``:
    {name: step fn}."""
    if args.device == "cuda":
        print("peak memory = torch.cuda.max_memory_allocated over 2 calls")
        peaks = {name: cuda_peak_memory(cuda_fns[name]) for name in names}
        for name, peak in peaks.items():
            print(f"  {name:>12}: {mib(peak):8.1f} MiB")
        return peaks
    print(
        "peak memory = peak RSS (VmHWM) of a fresh process that builds the model and "
        "runs it;\n'above baseline' subtracts a process that only imports"
    )
    base = cpu_peak_rss(None, args, "")
    print(f"  {'baseline':>12}: {mib(base):8.1f} MiB")
    peaks = {}
    for name in names:
        peak = cpu_peak_rss(task, args, name)
        peaks[name] = peak - base
        print(f"  {name:>12}: {mib(peak):8.1f} MiB  ({mib(peak - base):7.1f} MiB above baseline)")
    return peaks
