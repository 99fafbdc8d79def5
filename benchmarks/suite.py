"""One command, one shape: training step and generation against the plain-PyTorch reference,
and against Hugging Face GPT-2 / Llama with the same weights (issue 12).

For the same model shape it runs, each part in interleaved paired rounds (``common.py``):

1. **training step** (forward, float32 cross-entropy, backward, AdamW, zero_grad) of ours vs the
   reference with every feature off, then with the modern set (rotary, RMSNorm, SwiGLU, qk-norm;
   ``reference.FEATURE_SETS``): tokens/s, the paired ratio of step times, MFU and the peak memory
   of a step (CPU: peak RSS of a fresh process above an import-only baseline, with
   ``MALLOC_MMAP_THRESHOLD_=131072`` so freed blocks leave the heap; CUDA: max allocated);
2. **greedy generation** (``--gen-features``, rotary by default): ours with the dynamic cache,
   the static cache and ``compile=True`` vs the reference's preallocated KV cache, with the
   reference holding our weights (identical greedy tokens checked before timing);
3. **Hugging Face** GPT-2 and Llama of the same shape, converted by our converter, identical
   greedy tokens checked before timing (``hf_compare.py``); skipped with ``--no-hf``.

MFU = achieved FLOP/s over the machine's measured matmul peak (``common.matmul_peak_flops``, a
1024^3 matmul in the run's dtype), with ``6 * params`` FLOPs per trained token and ``2 * params``
per generated token (attention scores left out). A markdown summary closes the output.

    python benchmarks/suite.py --threads 1                   # the issue's default shape, CPU
    python benchmarks/suite.py --device cuda --dtype bfloat16 --batch 16 --seq-len 1024 \
        --max-seq-len 1024
"""

import argparse
import contextlib
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common, reference, ...
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the x_transformers checkout

import generate as gen_bench
import hf_compare
import train_step
from common import (
    common_parser,
    copy_weights,
    describe,
    matmul_peak_flops,
    median,
    mib,
    paired_ratio,
    peak_memory_report,
    setup,
    time_interleaved,
)

GEN_VARIANTS = ("ours cached", "ours static", "ours compiled", "ref cached")
GEN_LABELS = {
    "ours cached": "ours, dynamic cache",
    "ours static": "ours, static cache",
    "ours compiled": "ours, compile=True",
    "ref cached": "reference, KV cache",
}


def with_(args, **changes):
    return argparse.Namespace(**{**vars(args), **changes})


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def training(args, features, device, autocast, peak):
    """Time ours vs the reference for one feature set; return the summary row."""
    targs = with_(args, features=features, batch=args.batch, repeats=args.train_repeats)
    models = {name: train_step.build(targs, name, device) for name in train_step.NAMES}
    params = n_params(models["ours"])
    if params != n_params(models["reference"]):
        raise SystemExit(f"{features}: parameter counts differ")
    steps = {n: train_step.make_step(targs, models[n], device, autocast) for n in models}
    times = time_interleaved(steps, device, args.warmup, targs.repeats)
    tokens = args.batch * args.seq_len
    print(f"\ntraining step, features {features} ({params:,} parameters, {tokens} tokens):")
    row = {"features": features, "params": params}
    for name in train_step.NAMES:
        tokens_per_s = tokens / median(times[name])
        row[name] = (median(times[name]), tokens_per_s, tokens_per_s * 6 * params / peak)
        print(
            f"  {name:>9}: {median(times[name]) * 1e3:8.1f} ms/step  {tokens_per_s:9,.0f} "
            f"tokens/s  MFU {row[name][2]:6.2%}"
        )
    row["ratio"] = paired_ratio(times["ours"], times["reference"])
    print(f"  ratio ours/reference step time: {row['ratio']:.3f} paired median")
    if not args.no_memory:
        peaks = peak_memory_report(train_step.NAMES, train_step.memory_task, targs, steps)
        row["memory"] = peaks
    return row


def generation(args, device, autocast, peak):
    gargs = with_(args, features=args.gen_features, batch=args.gen_batch, compile=False)
    models = {
        "ours": gen_bench.build_eval(gargs, "ours", device),
        "ref": gen_bench.build_eval(gargs, "ref", device),
    }
    copy_weights(models["ours"], models["ref"])  # the same function: same greedy tokens
    params = n_params(models["ours"])
    fns = {
        v: gen_bench.make_generate(gargs, v, models[v.split()[0]], device, autocast)
        for v in GEN_VARIANTS
    }
    expected = fns["ref cached"]()
    same = {v: bool(torch.equal(fns[v](), expected)) for v in GEN_VARIANTS[:-1]}
    for v, equal in same.items():  # the first call of 'ours compiled' also compiles
        print(f"greedy tokens of {v} == reference (same weights): {equal}")
    times = time_interleaved(fns, device, args.warmup, args.gen_repeats)
    new = args.gen_batch * args.new_tokens
    print(
        f"\ngeneration, features {args.gen_features} ({params:,} parameters), batch "
        f"{args.gen_batch}, prompt {args.prompt_len}, {args.new_tokens} new tokens:"
    )
    rows = {}
    for v in GEN_VARIANTS:
        tokens_per_s = new / median(times[v])
        speed = paired_ratio(times["ref cached"], times[v])
        rows[v] = (tokens_per_s, speed, tokens_per_s * 2 * params / peak, same.get(v, True))
        print(
            f"  {GEN_LABELS[v]:>20}: {tokens_per_s:8,.0f} tokens/s  {speed:5.2f}x reference "
            f"(paired)  MFU {rows[v][2]:6.2%}"
        )
    return params, rows


def summary(args, peak, train_rows, gen, hf):
    unit = "allocated" if args.device == "cuda" else "RSS above baseline"
    print("\n## summary (markdown)\n")
    print(f"measured {args.dtype} matmul peak: {peak / 1e9:.1f} GFLOP/s\n")
    print(
        f"| training step, batch {args.batch} x {args.seq_len} | params | ours tokens/s | "
        f"reference tokens/s | ours / reference time (paired) | MFU ours | "
        f"peak memory ours / reference ({unit}) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in train_rows:
        memory = "-"
        if "memory" in row:
            ours, ref = row["memory"]["ours"], row["memory"]["reference"]
            memory = f"{mib(ours):.1f} / {mib(ref):.1f} MiB = {ours / ref:.3f}"
        print(
            f"| features {row['features']} | {row['params']:,} | {row['ours'][1]:,.0f} | "
            f"{row['reference'][1]:,.0f} | **{row['ratio']:.3f}** | {row['ours'][2]:.2%} | "
            f"{memory} |"
        )
    if gen is not None:
        params, rows = gen
        print(
            f"\n| generation, {args.gen_features}, batch {args.gen_batch}, "
            f"{args.new_tokens} new tokens | tokens/s | × reference tokens/s (paired) | MFU | "
            "same greedy tokens |"
        )
        print("|---|---:|---:|---:|---|")
        for v, (tokens_per_s, speed, mfu, same) in rows.items():
            label = GEN_LABELS[v]
            print(f"| {label} | {tokens_per_s:,.0f} | **{speed:.2f}** | {mfu:.2%} | {same} |")
    for family, result in hf.items():
        if isinstance(result, str):
            print(f"\n{family}: {result}")
            continue
        print(
            f"\n| {family} ({result['params']:,} params), same weights | tokens/s | "
            "× HF tokens/s (paired) | MFU |"
        )
        print("|---|---:|---:|---:|")
        for name, (tokens_per_s, speed, mfu) in result["generation"].items():
            print(f"| generate: {name} | {tokens_per_s:,.0f} | {speed:.2f} | {mfu:.2%} |")
        for name, (tokens_per_s, mfu) in result["train"].items():
            print(f"| train step: {name} | {tokens_per_s:,.0f} | | {mfu:.2%} |")
        print(f"| train step: ours / hf time (paired) | | **{result['train_ratio']:.3f}** | |")


def main():
    p = common_parser(__doc__.splitlines()[0])
    p.add_argument("--seq-len", type=int, default=128, help="training / HF training sequence")
    p.add_argument("--train-repeats", type=int, default=10)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--gen-batch", type=int, default=4)
    p.add_argument("--gen-repeats", type=int, default=7)
    p.add_argument("--gen-features", default="rotary", choices=["off", "rotary", "modern"])
    p.add_argument(
        "--compile-backend",
        default=None,
        help="backend of the 'ours compiled' variant (default: compile=True)",
    )
    p.add_argument("--no-hf", action="store_true", help="skip the Hugging Face comparison")
    p.add_argument("--families", default="gpt2,llama")
    p.add_argument("--skip", default="", help="comma list of parts to skip: train,generate,hf")
    p.set_defaults(dim=512, depth=6, heads=8, max_seq_len=256, batch=4, warmup=2)
    args = p.parse_args()
    if args.compile:
        raise SystemExit("--compile is not a suite option: 'ours, compile=True' is measured")
    if args.seq_len > args.max_seq_len or args.prompt_len + args.new_tokens > args.max_seq_len:
        raise SystemExit("--seq-len and --prompt-len + --new-tokens must fit in --max-seq-len")
    skip = set(filter(None, args.skip.split(",")))
    if args.no_hf:
        skip.add("hf")
    if args.device == "cpu":  # memory children: freed large blocks go back to the system
        os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")
    device, autocast = setup(args)
    describe(args)
    print(
        f"vocab {args.vocab}, dim {args.dim}, depth {args.depth}, heads {args.heads}, "
        f"max_seq_len {args.max_seq_len}; train batch {args.batch} x {args.seq_len}"
    )
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    peak = matmul_peak_flops(device, dtype)
    print(f"measured {args.dtype} matmul peak: {peak / 1e9:.1f} GFLOP/s")

    train_rows = []
    if "train" not in skip:
        train_rows = [training(args, f, device, autocast, peak) for f in ("off", "modern")]
    gen = None if "generate" in skip else generation(args, device, autocast, peak)
    hf = {}
    if "hf" not in skip:
        hargs = with_(args, batch=args.gen_batch, repeats=args.gen_repeats)
        models = hf_compare.hf_models(hargs)
        for family in args.families.split(","):
            context = autocast() if args.dtype == "bfloat16" else contextlib.nullcontext()
            try:
                with context:
                    hf[family] = hf_compare.report_family(
                        hargs, family, models[family], device, peak
                    )
            except SystemExit as stop:  # greedy tokens differ: reported, not timed
                hf[family] = f"not timed: {stop}"
    summary(args, peak, train_rows, gen, hf)


if __name__ == "__main__":
    main()
