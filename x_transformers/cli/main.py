"""``xtransformers``: train, sample and evaluate byte-level language models from the command line.

    xtransformers train --preset tiny                      # built-in corpus, about a minute on CPU
    xtransformers train --config my.toml --data enwik8.gz --set attn_layers.depth=8
    xtransformers train --resume runs/tiny                 # continue exactly where it stopped
    torchrun --nproc_per_node 2 -m x_transformers.cli train --preset tiny   # DDP (or --fsdp)
    xtransformers sample runs/tiny --prompt "def main(" --length 300 --top-p 0.9
    xtransformers eval runs/tiny --data some.txt           # bits per byte
    xtransformers ablate --suite default --seeds 3         # each technique vs a base: table, plots

Problems the user can fix (a config key, a missing file, a corrupt checkpoint) are printed as one
line and exit with status 2; a run whose loss turns non-finite stops with status 3 (its newest
checkpoint is the last finite one); a run stopped by SIGINT / SIGTERM exits with 128 + the signal
number after writing its checkpoint. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from .errors import CLIError, ConfigError

RUN_FILES = ("checkpoints", "metrics.jsonl", "curves.png", "config.toml")


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def build_parser() -> argparse.ArgumentParser:
    from .config import preset_names

    parser = argparse.ArgumentParser(
        prog="xtransformers",
        description="Train, sample and evaluate x_transformers language models on bytes.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(commands, preset_names())
    add_sample_parser(commands)
    add_eval_parser(commands)

    from .ablation.command import add_parser as add_ablate_parser

    add_ablate_parser(commands)
    return parser


def add_train_parser(commands, presets: list[str]) -> None:
    train = commands.add_parser("train", help="train a model (or resume a run)")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--preset", help=f"a shipped config: {', '.join(presets)} (default: tiny)")
    source.add_argument("--config", help="a TOML or YAML file of the library's keywords")
    source.add_argument("--resume", metavar="RUN", help="continue a run folder (or checkpoint)")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one key (repeatable)",
    )
    train.add_argument("--data", help="text file, .gz of one, or folder (default: built-in)")
    train.add_argument("--out", help="run folder (default: runs/<preset or config name>)")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a run folder that already holds a run",
    )
    train.add_argument(
        "--stop-at",
        type=int,
        metavar="STEP",
        help="checkpoint and stop after this step (the schedule still spans "
        "train.steps); --resume continues",
    )
    train.add_argument(
        "--discard-newer",
        action="store_true",
        help="with --resume of an older checkpoint: delete the newer checkpoints and the "
        "metrics after it (without it, that resume is refused)",
    )
    train.add_argument("--fsdp", action="store_true", help="under torchrun, shard with FSDP2")
    train.add_argument("--compile", action="store_true", help="torch.compile the training step")
    train.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    train.add_argument("--threads", type=int, help="CPU threads per process (torch default)")


def add_sample_parser(commands) -> None:
    sample = commands.add_parser("sample", help="generate text from a checkpoint")
    sample.add_argument("checkpoint", help="a run folder (its latest checkpoint) or a checkpoint")
    prompt = sample.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    prompt.add_argument("--prompt-file", help="read the prompt from this file")
    sample.add_argument("--length", type=int, default=256, help="bytes to generate")
    sample.add_argument("--num-samples", type=int, default=1)
    sample.add_argument("--temperature", type=float, default=1.0, help="0 is greedy")
    nucleus = sample.add_mutually_exclusive_group()
    nucleus.add_argument("--top-k", type=int, help="keep the k most likely bytes")
    nucleus.add_argument("--top-p", type=float, help="nucleus sampling threshold")
    nucleus.add_argument("--min-p", type=float, help="min-p sampling ratio")
    nucleus.add_argument("--no-filter", action="store_true", help="sample the full distribution")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--device")
    sample.add_argument("--threads", type=int, help="CPU threads (torch default)")


def add_eval_parser(commands) -> None:
    evaluate = commands.add_parser("eval", help="bits per byte of a checkpoint on a file")
    evaluate.add_argument("checkpoint", help="a run folder (its latest checkpoint) or a checkpoint")
    evaluate.add_argument(
        "--data",
        help="text file, .gz or folder to score in full (default: the run's validation split)",
    )
    evaluate.add_argument("--max-bytes", type=int, help="score only the first N bytes")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--device")
    evaluate.add_argument("--threads", type=int, help="CPU threads (torch default)")


# ---------------------------------------------------------------------------- train


def _train_config(args):
    from .checkpoint import find_checkpoint, read_manifest
    from .config import MODEL_SECTIONS, read_config_file, read_preset, resolve

    overrides = list(args.overrides)
    overrides += [f"data.path={json.dumps(args.data)}"] if args.data else []
    overrides += ["train.parallel='fsdp'"] if args.fsdp else []
    overrides += ["train.compile=true"] if args.compile else []
    if args.resume:
        if args.out or args.overwrite:
            raise CLIError(
                "--resume continues in the checkpoint's own run folder; drop --out and --overwrite"
            )
        checkpoint = find_checkpoint(args.resume)
        stored = read_manifest(checkpoint)["config"]
        for text in args.overrides:
            if text.split(".", 1)[0].strip() in MODEL_SECTIONS:
                raise ConfigError(
                    f"--set {text}: a resumed run keeps its model; only [train] "
                    "and [data] keys can change"
                )
        run_dir = checkpoint.parent.parent
        config = resolve(stored, f"checkpoint {checkpoint}", overrides, name=run_dir.name)
        return config, run_dir, checkpoint
    if args.config:
        raw, origin = read_config_file(args.config)
        name = Path(args.config).stem
    else:
        name = args.preset or "tiny"
        raw, origin = read_preset(name)
    config = resolve(raw, origin, overrides, name=name)
    run_dir = Path(args.out or Path("runs") / name)
    return config, run_dir, None


def _prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    from .checkpoint import list_checkpoints

    existing = list_checkpoints(run_dir)
    if existing and not overwrite:
        raise CLIError(
            f"{run_dir} already holds a run (latest checkpoint {existing[-1].name}); continue it "
            f"with --resume {run_dir}, choose another --out, or start over with --overwrite"
        )
    if overwrite and _is_main_process():
        for name in RUN_FILES:
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()


def command_train(args) -> int:
    from .train import train

    config, run_dir, checkpoint = _train_config(args)
    if checkpoint is None:
        _prepare_run_dir(run_dir, args.overwrite)
    if args.stop_at is not None and args.stop_at < 1:
        raise CLIError(f"--stop-at must be >= 1, got {args.stop_at}")
    if args.discard_newer and checkpoint is None:
        raise CLIError("--discard-newer only applies with --resume")
    result = train(
        config,
        run_dir,
        resume=checkpoint,
        stop_at=args.stop_at,
        device=args.device,
        discard_newer=args.discard_newer,
    )
    if not _is_main_process():
        return 0
    if result.stopped_by is not None:
        print(
            f"stopped by {result.stopped_by.name} at step {result.step}; checkpoint written. "
            f"Continue with: xtransformers train --resume {run_dir}"
        )
        return 128 + int(result.stopped_by)
    val = f", validation {result.val_bpb:.4f} bits/byte" if result.val_bpb is not None else ""
    print(f"done: step {result.step}{val}. Sample with: xtransformers sample {run_dir}")
    return 0


# ---------------------------------------------------------------------------- sample, eval


def load_for_inference(path: str, device: str | None):
    """(config, autoregressive model in eval mode, checkpoint folder) from a run or checkpoint."""
    from .checkpoint import check_fits, find_checkpoint, load_model_state, read_manifest
    from .config import build_model, config_from_dict
    from .distributed import pick_device

    checkpoint = find_checkpoint(path)
    manifest = read_manifest(checkpoint)
    config = config_from_dict(manifest["config"], f"checkpoint {checkpoint}")
    weights = load_model_state(checkpoint, manifest)
    net, model = build_model(config)
    check_fits(net, weights, checkpoint)
    net.load_state_dict(weights, strict=True)
    return config, model.to(pick_device(device)).eval(), checkpoint


def _filter_choice(args) -> tuple[str | None, dict | None]:
    if args.no_filter:
        return None, None
    if args.top_k is not None:
        return "top_k", {"k": args.top_k}
    if args.top_p is not None:
        return "top_p", {"thres": args.top_p}
    if args.min_p is not None:
        return "min_p", {"min_p": args.min_p}
    return "top_k", None  # the library's default filter


def command_sample(args) -> int:
    from .errors import read_text_file
    from .evaluate import encode, printable, sample_text
    from .settings import check_option

    if args.length < 1 or args.num_samples < 1:
        raise CLIError(
            f"--length and --num-samples must be >= 1, got {args.length}, {args.num_samples}"
        )
    for flag in ("temperature", "top_p", "min_p"):  # finite; the library checks the ranges
        check_option(f"--{flag.replace('_', '-')}", getattr(args, flag))
    text = read_text_file(args.prompt_file, "--prompt-file") if args.prompt_file else args.prompt
    if not text:
        raise CLIError("the prompt is empty; give at least one character")
    config, model, _ = load_for_inference(args.checkpoint, args.device)
    filter_fn, filter_kwargs = _filter_choice(args)
    try:
        samples = sample_text(
            model,
            encode(text),
            args.length,
            args.seed,
            args.temperature,
            filter_fn,
            filter_kwargs,
            args.num_samples,
        )
    except ValueError as error:  # e.g. a filter argument out of range, from the library
        raise CLIError(f"sampling: {error}") from None
    for index, sample in enumerate(samples):
        if index:
            print("\n" + "-" * 40)
        print(printable(text + sample))
    return 0


def command_eval(args) -> int:
    from .data import corpus_file, eval_windows, memory_map, open_corpus
    from .evaluate import sum_losses
    from .settings import POSITIVE, Range, check_option

    check_option("--batch-size", args.batch_size, POSITIVE, integer=True)
    check_option("--max-bytes", args.max_bytes, Range(low=2), integer=True)

    config, model, checkpoint = load_for_inference(args.checkpoint, args.device)
    if args.data:
        file, description = corpus_file(args.data)
        tokens = memory_map(file)
    else:
        corpus = open_corpus(config.data.path, config.data.val_fraction, config.seq_len + 1)
        tokens, description = corpus.val, f"validation split of {corpus.description}"
    if args.max_bytes is not None:
        tokens = tokens[: args.max_bytes]
    if len(tokens) < 2:
        raise CLIError(f"{description}: need at least 2 bytes to score, got {len(tokens)}")
    device = next(model.parameters()).device
    total = sum_losses(
        model, tokens, eval_windows(len(tokens), config.seq_len), args.batch_size, device
    )
    report = {
        "checkpoint": str(checkpoint),
        "data": description,
        "bytes": total.count,
        "loss_nats": total.mean,
        "bits_per_byte": total.bits_per_byte,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{description}: {total.bits_per_byte:.4f} bits per byte "
            f"(loss {total.mean:.4f} nats, {total.count:,} bytes scored)"
        )
    return 0


def _set_threads(threads: int) -> None:
    import torch

    if threads < 1:
        raise CLIError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def command_ablate(args) -> int:
    from .ablation.command import command_ablate as run_ablation

    return run_ablation(args)


COMMANDS = {
    "train": command_train,
    "sample": command_sample,
    "eval": command_eval,
    "ablate": command_ablate,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.threads is not None:
            _set_threads(args.threads)
        return COMMANDS[args.command](args)
    except CLIError as error:
        print(f"xtransformers {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
