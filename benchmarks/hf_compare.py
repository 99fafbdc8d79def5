"""Side by side with Hugging Face ``transformers`` on the same weights: GPT-2 and Llama.

Builds a randomly initialised ``GPT2LMHeadModel`` and ``LlamaForCausalLM`` of the benchmark shape,
converts each with our converter (``x_transformers.hub``), checks that greedy generation gives
the same tokens, then times, in interleaved paired rounds:

* greedy generation of ``--new-tokens`` tokens: HF ``generate`` (its KV cache) against ours with
  the dynamic cache, the static cache and ``compile=True``;
* one training step (forward, loss, backward, AdamW) of each.

It prints tokens/s, the paired ratios, and the model FLOPs utilisation: ``2 * params`` FLOPs per
generated token (``6 * params`` per trained token) over the machine's measured float32 matmul
peak.

    python benchmarks/hf_compare.py --threads 1
    python benchmarks/hf_compare.py --device cuda --dtype bfloat16 --dim 768 --depth 12
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the x_transformers checkout

from common import (
    common_parser,
    describe,
    matmul_peak_flops,
    median,
    paired_ratio,
    setup,
    time_interleaved,
)

from x_transformers import AutoregressiveWrapper


def hf_models(args):
    """{'gpt2': model, 'llama': model}: random HF models of the benchmark shape, eval mode."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(args.seed)
    gpt2 = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=args.vocab, n_positions=args.max_seq_len, n_embd=args.dim,
            n_layer=args.depth, n_head=args.heads, attn_implementation="sdpa",
        )
    )  # fmt: skip
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=args.vocab, hidden_size=args.dim, intermediate_size=4 * args.dim,
            num_hidden_layers=args.depth, num_attention_heads=args.heads,
            num_key_value_heads=args.heads, max_position_embeddings=args.max_seq_len,
            attn_implementation="sdpa",
        )
    )  # fmt: skip
    return {"gpt2": gpt2.eval(), "llama": llama.eval()}


def ours_from(family, hf_model):
    from x_transformers.hub.gpt2 import from_hf_gpt2
    from x_transformers.hub.llama import from_hf_llama

    return (from_hf_gpt2 if family == "gpt2" else from_hf_llama)(hf_model).eval()


def generation_fns(args, hf_model, ours, prompt):
    wrapper = AutoregressiveWrapper(ours)  # one wrapper: its compiled step is reused
    new = args.new_tokens
    mask = torch.ones_like(prompt)

    def hf():
        # an explicit all-ones mask: without it HF infers one from pad_token_id and masks out
        # every prompt token that happens to equal it
        out = hf_model.generate(
            prompt, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
            do_sample=False, use_cache=True, pad_token_id=0,
        )  # fmt: skip
        return out[:, prompt.shape[1] :]

    def ours_with(**options):
        return lambda: wrapper.generate(prompt, new, temperature=0.0, **options)

    return {
        "hf": hf,
        "ours dynamic": ours_with(),
        "ours static": ours_with(cache_kind="static"),
        "ours compiled": ours_with(compile=args.compile_backend or True),
    }


def train_fns(args, hf_model, ours, device):
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq_len + 1), device=device)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]

    def step_of(model, logits_of):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            logits = logits_of(model)
            loss = F.cross_entropy(logits.float().transpose(1, 2), targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return step

    return {
        "hf train": step_of(hf_model, lambda m: m(inputs).logits),
        "ours train": step_of(ours, lambda m: m(inputs)),
    }


def report_family(args, family, hf_model, device, peak):
    """Check identical greedy tokens, time generation and a training step, print them, and
    return {'params': n, 'generation': {name: (tokens/s, speed vs hf, MFU)},
    'train': {name: (tokens/s, MFU)}, 'train_ratio': ours / hf step time (paired)}."""
    result = {"generation": {}, "train": {}}
    ours = ours_from(family, hf_model).to(device)
    hf_model = hf_model.to(device)
    params = result["params"] = sum(p.numel() for p in ours.parameters())
    prompt = torch.randint(0, args.vocab, (args.batch, args.prompt_len), device=device)
    fns = generation_fns(args, hf_model, ours, prompt)
    with torch.no_grad():
        reference = fns["hf"]()
        for name in ("ours dynamic", "ours static", "ours compiled"):
            same = torch.equal(fns[name](), reference)
            print(f"{family}: greedy tokens of {name} == hf: {same}")
            if not same:
                raise SystemExit(f"{family}: {name} differs from the reference; no timing")
        times = time_interleaved(fns, device, args.warmup, args.repeats)
    new = args.batch * args.new_tokens
    print(f"\n{family} ({params:,} parameters), greedy generation, {new} new tokens per call:")
    for name, values in times.items():
        tokens_per_s = new / median(values)
        mfu = tokens_per_s * 2 * params / peak
        speed = paired_ratio(times["hf"], values)
        result["generation"][name] = (tokens_per_s, speed, mfu)
        print(
            f"  {name:>14}: {tokens_per_s:9,.0f} tokens/s  {speed:5.2f}x hf (paired)  "
            f"MFU {mfu:6.2%}"
        )
    for model in (ours, hf_model):
        model.train()
    times = time_interleaved(train_fns(args, hf_model, ours, device), device, 1, args.repeats)
    trained = args.batch * args.seq_len
    print(f"{family}, training step (batch {args.batch} x {args.seq_len}):")
    for name, values in times.items():
        tokens_per_s = trained / median(values)
        mfu = tokens_per_s * 6 * params / peak
        result["train"][name] = (tokens_per_s, mfu)
        print(f"  {name:>14}: {tokens_per_s:9,.0f} tokens/s  MFU {mfu:6.2%}")
    ratio = result["train_ratio"] = paired_ratio(times["ours train"], times["hf train"])
    print(f"  ratio ours/hf step time: {ratio:.3f} paired median")
    return result


def main():
    p = common_parser(__doc__.splitlines()[0])
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument(
        "--compile-backend",
        default=None,
        help="backend of the 'ours compiled' variant (default: compile=True)",
    )
    p.add_argument("--families", default="gpt2,llama")
    p.set_defaults(dim=512, depth=6, heads=8, batch=4, warmup=1, repeats=5)
    args = p.parse_args()
    device, _ = setup(args)
    describe(args)
    peak = matmul_peak_flops(device, torch.float32)
    print(f"measured float32 matmul peak: {peak / 1e9:.1f} GFLOP/s")
    models = hf_models(args)
    for family in args.families.split(","):
        report_family(args, family, models[family], device, peak)


if __name__ == "__main__":
    main()
