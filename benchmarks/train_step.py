"""Training-step throughput: our decoder vs the plain-PyTorch reference of the same features.

One step = forward, cross-entropy loss, backward, AdamW step, zero_grad.
Both models get the same shapes and the same seed; their parameter counts
must match. Steps of the two models are interleaved; we report the median step
time, tokens/s, peak memory and the ratio ours / reference of step time.

    python benchmarks/train_step.py                # defaults sized for a 2-core CPU
    python benchmarks/train_step.py --modern       # rotary, RMSNorm, SwiGLU, qk-norm on both
    python benchmarks/train_step.py --device cuda --dtype bfloat16 --dim 1024 --depth 12
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common, reference
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the x_transformers checkout

from common import (
    build_ours,
    common_parser,
    describe,
    median,
    paired_ratio,
    peak_memory_report,
    setup,
    time_interleaved,
)
from reference import FEATURE_SETS, ReferenceGPT

from x_transformers.weight_layout import store_row_major

NAMES = ("ours", "reference")


def build(args, name, device):
    """Build one model with the seed reset, so both start from the same RNG state."""
    torch.manual_seed(args.seed)
    shape = (args.vocab, args.max_seq_len, args.dim, args.depth, args.heads)
    if name == "ours":
        model = build_ours(args.features, *shape)
        if args.row_major_weights:
            store_row_major(model)
    else:
        model = ReferenceGPT(*shape, **FEATURE_SETS[args.features])
    return model.to(device).train()


def make_step(args, model, device, autocast):
    """Return a zero-arg callable doing one full training step on fixed random data."""
    g = torch.Generator().manual_seed(args.seed)
    data = torch.randint(0, args.vocab, (args.batch, args.seq_len + 1), generator=g).to(device)
    inp, target = data[:, :-1], data[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    fwd = torch.compile(model) if args.compile else model

    def step():
        with autocast():
            logits = fwd(inp)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def memory_task(args, name):
    """Run in a fresh child process for the CPU peak-RSS measurement."""
    device, autocast = setup(args)
    step = make_step(args, build(args, name, device), device, autocast)
    for _ in range(3):
        step()


def main():
    p = common_parser(__doc__.splitlines()[0])
    p.add_argument("--seq-len", type=int, default=None, help="default: --max-seq-len")
    p.add_argument("--allow-param-mismatch", action="store_true")
    args = p.parse_args()
    args.seq_len = args.seq_len or args.max_seq_len
    device, autocast = setup(args)
    describe(args)
    print(
        f"features {args.features}, vocab {args.vocab}, dim {args.dim}, depth {args.depth}, "
        f"heads {args.heads}, seq {args.seq_len}, batch {args.batch}, warmup {args.warmup}, "
        f"repeats {args.repeats}"
    )

    models = {name: build(args, name, device) for name in NAMES}
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    for name in NAMES:
        print(f"params {name:>9}: {counts[name]:,}")
    if counts["ours"] != counts["reference"]:
        msg = "parameter counts differ"
        if not args.allow_param_mismatch:
            raise SystemExit(f"error: {msg} (pass --allow-param-mismatch to time anyway)")
        print(f"WARNING: {msg}")

    steps = {name: make_step(args, models[name], device, autocast) for name in NAMES}
    times = time_interleaved(steps, device, args.warmup, args.repeats)

    tokens = args.batch * args.seq_len
    print("\ntraining step (median over interleaved repeats):")
    for name in NAMES:
        t = median(times[name])
        print(
            f"  {name:>9}: {t * 1e3:8.1f} ms/step  {tokens / t:10,.0f} tokens/s  "
            f"(min {min(times[name]) * 1e3:.1f} ms)"
        )
    ours, ref = times["ours"], times["reference"]
    print(
        f"  ratio ours/reference step time: {paired_ratio(ours, ref):.3f} paired median "
        f"(target <= 1.00 features off, <= 1.10 modern); "
        f"{median(ours) / median(ref):.3f} of medians, {min(ours) / min(ref):.3f} of minima"
    )

    if not args.no_memory:
        print()
        peak_memory_report(NAMES, memory_task, args, cuda_fns=steps)


if __name__ == "__main__":
    main()
