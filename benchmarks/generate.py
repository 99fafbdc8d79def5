"""Generation throughput: ``AutoregressiveWrapper.generate`` vs the reference.

Times greedy generation (temperature 0) of ``--new-tokens`` tokens from a random
prompt, with and without the KV cache, for our model and the plain-PyTorch
reference. Calls of the four variants are interleaved; we report the median
time per ``generate`` call, new tokens/s (batch * new tokens / time) and the
ratios ours / reference. It also checks that cached and uncached greedy outputs
agree for each model (if our cache is not implemented yet, ``cache_kv=True``
may simply recompute; the numbers then show that).

    python benchmarks/generate.py
    python benchmarks/generate.py --device cuda --batch 16 --new-tokens 512 --max-seq-len 1024
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common, reference
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the x_transformers checkout

from common import (
    common_parser,
    describe,
    median,
    paired_ratio,
    peak_memory_report,
    setup,
    time_interleaved,
)
from train_step import build

from x_transformers import AutoregressiveWrapper

VARIANTS = ("ours cached", "ref cached", "ours no-cache", "ref no-cache")
# ours with a static cache, and with generate(compile=True) (one compiled decode step)
FAST_VARIANTS = ("ours static", "ours compiled")


def make_generate(args, name, model, device, autocast):
    """Return a zero-arg callable generating (batch, new_tokens) tokens."""
    g = torch.Generator().manual_seed(args.seed)
    prompt = torch.randint(0, args.vocab, (args.batch, args.prompt_len), generator=g).to(device)
    cache_kv = not name.endswith(" no-cache")
    options = {}
    if name.startswith("ours"):
        gen = AutoregressiveWrapper(model).generate  # one wrapper: compiled steps are reused
        options = {
            "ours static": {"cache_kind": "static"},
            "ours compiled": {"compile": args.compile_backend or True},
        }.get(name, {})
    else:
        gen = model.generate

    def run():
        with torch.no_grad(), autocast():
            return gen(prompt, args.new_tokens, cache_kv=cache_kv, temperature=0.0, **options)

    return run


def cached_ours(fns):
    return fns["ours cached"]()


def build_eval(args, name, device):
    model = build(args, "ours" if name.startswith("ours") else "reference", device).eval()
    return torch.compile(model) if args.compile else model


def memory_task(args, name):
    """Run in a fresh child process for the CPU peak-RSS measurement."""
    device, autocast = setup(args)
    run = make_generate(args, name, build_eval(args, name, device), device, autocast)
    for _ in range(2):
        run()


def main():
    p = common_parser(__doc__.splitlines()[0])
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument(
        "--compile-backend",
        default=None,
        help="backend of the 'ours compiled' variant (default: compile=True, the inductor "
        "backend with frozen weights on the CPU)",
    )
    p.add_argument("--no-fast", action="store_true", help="skip the static / compiled variants")
    p.set_defaults(batch=4, warmup=1, repeats=5)
    args = p.parse_args()
    device, autocast = setup(args)
    describe(args)
    print(
        f"vocab {args.vocab}, dim {args.dim}, depth {args.depth}, heads {args.heads}, "
        f"max_seq_len {args.max_seq_len}, batch {args.batch}, prompt {args.prompt_len}, "
        f"new tokens {args.new_tokens}, warmup {args.warmup}, repeats {args.repeats}"
    )

    models = {"ours": build_eval(args, "ours", device), "ref": build_eval(args, "ref", device)}
    variants = VARIANTS + (() if args.no_fast else FAST_VARIANTS)
    fns = {v: make_generate(args, v, models[v.split()[0]], device, autocast) for v in variants}

    for who in ("ours", "ref"):
        cached, uncached = fns[f"{who} cached"](), fns[f"{who} no-cache"]()
        assert cached.shape == (args.batch, args.new_tokens), cached.shape
        same = torch.equal(cached, uncached)
        print(f"{who}: greedy cached == no-cache: {same}")
    for fast in variants[len(VARIANTS) :]:  # the first call also compiles (warm-up)
        print(f"{fast}: greedy == ours cached: {torch.equal(fns[fast](), cached_ours(fns))}")

    times = time_interleaved(fns, device, args.warmup, args.repeats)
    new = args.batch * args.new_tokens
    print("\ngeneration (median over interleaved repeats):")
    for v in variants:
        t = median(times[v])
        print(
            f"  {v:>13}: {t * 1e3:9.1f} ms/call  {new / t:9,.0f} new tokens/s  "
            f"(min {min(times[v]) * 1e3:.1f} ms)"
        )
    for kind in ("cached", "no-cache"):
        ours, ref = times[f"ours {kind}"], times[f"ref {kind}"]
        print(
            f"  ratio ours/ref time, {kind:>8}: {paired_ratio(ours, ref):.3f} paired median; "
            f"{median(ours) / median(ref):.3f} of medians, {min(ours) / min(ref):.3f} of minima"
        )
    for fast in variants[len(VARIANTS) :]:
        ours, ref = times[fast], times["ref cached"]
        print(
            f"  ratio ref cached/{fast} tokens/s: {paired_ratio(ref, ours):.3f} paired median; "
            f"{median(ref) / median(ours):.3f} of medians"
        )
    for who in ("ours", "ref"):
        speedup = median(times[f"{who} no-cache"]) / median(times[f"{who} cached"])
        print(f"  {who} cache speedup (no-cache time / cached time): {speedup:.2f}x")

    if not args.no_memory:
        print()
        peak_memory_report(VARIANTS, memory_task, args, cuda_fns=fns)


if __name__ == "__main__":
    main()
