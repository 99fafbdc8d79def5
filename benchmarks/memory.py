"""Activation memory of one training step against depth: plain, checkpointed and reversible.

For every depth (default 2, 4, 8, 16) and every stack (``Decoder(...)``,
``checkpoint_blocks=True``, ``reversible=True``) at a fixed width and sequence length:

* **activation peak**: what one training step (forward, loss, backward, AdamW step) adds to
  memory on top of the model, its gradients and its optimizer state. On CPU: a fresh process
  (``multiprocessing`` spawn) builds the model, materialises gradients and AdamW state with one
  zero-gradient step, reads its current RSS (``VmRSS``), runs one training step and reads its
  peak RSS (``VmHWM``); the figure is the difference. The child runs with
  ``MALLOC_MMAP_THRESHOLD_=131072`` (unless set already): large blocks then go straight back to
  the system when freed, so the figure follows the tensors alive at the peak instead of glibc's
  heap retention, which otherwise adds 10-70 MiB of noise that grows with the number of
  allocations (most for the reversible stack, whose backward allocates and frees per unit).
  On CUDA: ``max_memory_allocated`` minus ``memory_allocated`` before the step.
* **saved for backward**: bytes of the tensors autograd keeps for the backward pass, counted with
  ``torch.autograd.graph.saved_tensors_hooks`` (the parameters' own storage aside): exact and
  free of allocator noise.
* **step time**: median over interleaved rounds (``common.time_interleaved``), and its ratio to
  the plain stack of the same depth (paired median).

    nice python benchmarks/memory.py                 # defaults sized for a 2-core CPU (~5 min)
    python benchmarks/memory.py --device cuda --dim 1024 --max-seq-len 2048 --depths 4 8 16 32
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the x_transformers checkout

from common import common_parser, describe, median, mib, paired_ratio, setup, time_interleaved

from x_transformers import Decoder, TransformerWrapper

MMAP_THRESHOLD = 131072  # bytes; see the module docstring
VARIANTS = {
    "plain": {},
    "checkpointed": {"checkpoint_blocks": True},
    "reversible": {"reversible": True},
}


def build(args, variant, depth, device):
    torch.manual_seed(args.seed)
    model = TransformerWrapper(
        num_tokens=args.vocab,
        max_seq_len=args.max_seq_len,
        attn_layers=Decoder(dim=args.dim, depth=depth, heads=args.heads, **VARIANTS[variant]),
    )
    return model.to(device).train()


def make_step(args, model, device):
    """A zero-arg callable doing one training step on fixed random data; its optimizer."""
    generator = torch.Generator().manual_seed(args.seed)
    shape = (args.batch, args.max_seq_len + 1)
    data = torch.randint(0, args.vocab, shape, generator=generator).to(device)
    inputs, target = data[:, :-1], data[:, 1:]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        logits = model(inputs)
        F.cross_entropy(logits.transpose(1, 2).float(), target).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)

    return step, optimizer


def prepared_step(args, variant, depth, device):
    """Model, gradients and optimizer state in memory; returns the step."""
    model = build(args, variant, depth, device)
    step, optimizer = make_step(args, model, device)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()  # creates the AdamW state (zero gradients: a no-op on the weights)
    return step


def rss_bytes(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def activation_peak_child(args, variant, depth):
    """Run in a fresh process: peak RSS of one step minus the RSS before it (bytes)."""
    torch.set_num_threads(1)
    step = prepared_step(args, variant, depth, torch.device("cpu"))
    before = rss_bytes("VmRSS")
    step()
    return rss_bytes("VmHWM") - before


def activation_peak(args, variant, depth, device):
    if device.type == "cuda":
        step = prepared_step(args, variant, depth, device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    import multiprocessing as mp
    import os

    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))  # inherited by the child
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(activation_peak_child, (args, variant, depth))


def saved_for_backward(args, variant, depth, device):
    """Bytes autograd saves for the backward pass of one forward (parameters aside)."""
    model = build(args, variant, depth, device)
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    inputs = torch.zeros(args.batch, args.max_seq_len, dtype=torch.long, device=device)
    total = 0

    def pack(tensor):
        nonlocal total
        if tensor.untyped_storage().data_ptr() not in parameters:
            total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(inputs)
    return total


def main():
    parser = common_parser(__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.set_defaults(dim=64, heads=4, max_seq_len=256, batch=4, warmup=1, repeats=5)
    args = parser.parse_args()
    device, _ = setup(args)
    describe(args)
    print(
        f"vocab {args.vocab}, dim {args.dim}, heads {args.heads}, batch {args.batch} x seq "
        f"{args.max_seq_len}, depths {args.depths}, {args.repeats} timed steps"
    )
    rows = []
    for depth in args.depths:
        steps = {v: make_step(args, build(args, v, depth, device), device)[0] for v in VARIANTS}
        times = time_interleaved(steps, device, args.warmup, args.repeats)
        for variant in VARIANTS:
            peak = None if args.no_memory else activation_peak(args, variant, depth, device)
            saved = saved_for_backward(args, variant, depth, device)
            ratio = paired_ratio(times[variant], times["plain"])
            rows.append((depth, variant, peak, saved, median(times[variant]) * 1e3, ratio))
            print(f"  depth {depth:>2} {variant:>12} done", file=sys.stderr)
    peak_name = "CUDA allocated" if device.type == "cuda" else "peak RSS"
    print(f"\n| depth | stack | activation {peak_name} (MiB) | saved for backward (MiB) |", end="")
    print(" median ms/step | time / plain |")
    print("|---:|---|---:|---:|---:|---:|")
    for depth, variant, peak, saved, ms, ratio in rows:
        shown = "-" if peak is None else f"{mib(peak):.1f}"
        print(f"| {depth} | {variant} | {shown} | {mib(saved):.1f} | {ms:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
