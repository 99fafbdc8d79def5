"""Training-step time of the PaddlePaddle edition vs the torch edition (issue 16).

The same model (``TransformerWrapper`` + ``Decoder``, the default benchmark size of
``common.common_parser``: vocab 256, dim 256, depth 4, heads 4, sequence 256, batch 8, float32)
built by ``x_transformers`` and by ``pd_x_transformers`` with the same weights. One step =
forward, cross-entropy loss, backward, AdamW step, zero_grad. Steps of the two are interleaved;
the median step time of each and the ratio paddle / torch are printed.

    python benchmarks/paddle_step.py                # needs pip install -e '.[paddle]'
    python benchmarks/paddle_step.py --features modern --repeats 10
"""

import sys
import time
from pathlib import Path

import numpy as np
import paddle
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the checkout

from common import OURS, build_ours, common_parser, median  # noqa: E402

import pd_x_transformers as pdx  # noqa: E402


def paddle_model(args):
    layers, wrapper = OURS[args.features]
    return pdx.TransformerWrapper(
        num_tokens=args.vocab,
        max_seq_len=args.max_seq_len,
        attn_layers=pdx.Decoder(dim=args.dim, depth=args.depth, heads=args.heads, **layers),
        **wrapper,
    )


def main():
    parser = common_parser(__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=None, help="default: --max-seq-len")
    args = parser.parse_args()
    args.seq_len = args.seq_len or args.max_seq_len
    if args.device != "cpu" or args.dtype != "float32" or args.compile:
        raise SystemExit("this comparison runs on the CPU in float32, eagerly")
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    t_model = build_ours(
        args.features, args.vocab, args.max_seq_len, args.dim, args.depth, args.heads
    )
    p_model = paddle_model(args)
    p_model.set_state_dict(
        {k: paddle.to_tensor(v.numpy()) for k, v in t_model.state_dict().items()}
    )
    t_model.train(), p_model.train()

    g = torch.Generator().manual_seed(args.seed)
    data = torch.randint(0, args.vocab, (args.batch, args.seq_len + 1), generator=g)
    t_inp, t_target = data[:, :-1], data[:, 1:].reshape(-1)
    p_inp, p_target = paddle.to_tensor(t_inp.numpy()), paddle.to_tensor(t_target.numpy())
    t_opt = torch.optim.AdamW(t_model.parameters(), lr=1e-4)
    p_opt = paddle.optimizer.AdamW(learning_rate=1e-4, parameters=p_model.parameters())

    def torch_step():
        logits = t_model(t_inp)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), t_target)
        loss.backward()
        t_opt.step()
        t_opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    def paddle_step():
        logits = p_model(p_inp)
        loss = paddle.nn.functional.cross_entropy(logits.reshape([-1, logits.shape[-1]]), p_target)
        loss.backward()
        p_opt.step()
        p_opt.clear_grad()
        return float(loss)

    first = torch_step(), paddle_step()
    print(f"first-step losses: torch {first[0]:.6f}, paddle {first[1]:.6f}")
    times = {"torch": [], "paddle": []}
    for i in range(args.warmup + args.repeats):
        for name, step in (("torch", torch_step), ("paddle", paddle_step)):
            start = time.perf_counter()
            step()
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
    t, p = median(times["torch"]), median(times["paddle"])
    tokens = args.batch * args.seq_len
    print(
        f"features {args.features}, vocab {args.vocab}, dim {args.dim}, depth {args.depth}, "
        f"heads {args.heads}, seq {args.seq_len}, batch {args.batch}, float32 CPU, "
        f"torch threads {torch.get_num_threads()}, repeats {args.repeats}"
    )
    print(f"torch  {t * 1e3:8.1f} ms/step  {tokens / t:9.0f} tokens/s")
    print(f"paddle {p * 1e3:8.1f} ms/step  {tokens / p:9.0f} tokens/s")
    ratios = np.array(times["paddle"]) / np.array(times["torch"])
    print(f"ratio paddle / torch: {p / t:.2f} (median per-step ratio {np.median(ratios):.2f})")


if __name__ == "__main__":
    main()
