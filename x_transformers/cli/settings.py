"""The ``[train]`` and ``[data]`` sections of a run configuration: typed, documented, validated.

The model sections (``[wrapper]``, ``[attn_layers]``, ``[autoregressive]``) hold the library's own
keywords and are validated by the library; these two sections belong to the command line, so they
are declared here, one field per key, each with what it does.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError


def setting(default: Any, doc: str, choices: tuple[str, ...] = ()) -> Any:
    """A dataclass field for one configuration key (``choices`` restricts a string)."""
    return field(default=default, metadata={"doc": doc, "choices": choices})


@dataclass(frozen=True)
class TrainSettings:
    """How to optimise: AdamW ("Decoupled Weight Decay Regularization", 1711.05101) with linear
    warmup and cosine decay ("SGDR", 1608.03983)."""

    steps: int = setting(1000, "optimizer steps of the whole run (the schedule spans them)")
    batch_size: int = setting(16, "sequences per micro-batch, per process")
    grad_accum: int = setting(1, "micro-batches accumulated into one optimizer step")
    seq_len: int = setting(0, "tokens per training sequence; 0 means wrapper.max_seq_len")
    lr: float = setting(3e-4, "peak learning rate")
    min_lr_ratio: float = setting(
        0.1, "final learning rate of the cosine decay, as a fraction of lr"
    )
    warmup_steps: int = setting(100, "steps of linear warmup from 0 to lr")
    weight_decay: float = setting(0.1, "AdamW weight decay (matrices only; not biases or norms)")
    betas: tuple[float, float] = setting((0.9, 0.95), "AdamW betas")
    grad_clip: float = setting(1.0, "clip the gradient norm to this value; 0 turns clipping off")
    precision: str = setting(
        "auto",
        "'auto' (bf16 autocast where the GPU supports it), 'fp32' or 'bf16'",
        ("auto", "fp32", "bf16"),
    )
    compile: bool = setting(False, "torch.compile the training forward")
    parallel: str = setting(
        "ddp",
        "under torchrun: 'ddp' (DistributedDataParallel) or 'fsdp' (FSDP2 sharding)",
        ("ddp", "fsdp"),
    )
    seed: int = setting(0, "seed of the initialisation, the data order and dropout")
    log_every: int = setting(10, "steps between progress log lines when stdout is not a terminal")
    eval_every: int = setting(100, "steps between validations (and printed samples)")
    eval_batches: int = setting(8, "micro-batches of validation windows per validation")
    checkpoint_every: int = setting(500, "steps between checkpoints (one is always written last)")
    keep_checkpoints: int = setting(2, "how many of the newest checkpoints to keep")
    sample_length: int = setting(200, "bytes generated for the sample printed at each validation")
    sample_prompt: str = setting("", "prompt of that sample; empty takes text from validation")
    sample_temperature: float = setting(0.8, "temperature of that sample")


@dataclass(frozen=True)
class DataSettings:
    """Where the bytes come from and how they are split (the ``--data`` flag sets ``path``)."""

    path: str = setting("", "text file, .gz of one, or folder; empty: the built-in corpus")
    val_fraction: float = setting(0.05, "fraction of the corpus (its end) held out for validation")


def setting_docs(cls: type) -> dict[str, str]:
    return {f.name: f.metadata["doc"] for f in dataclasses.fields(cls)}


def _type_error(annotation: str, value: Any) -> str | None:
    """None when ``value`` fits the field's annotation, else what was expected."""
    if annotation == "bool":
        return None if isinstance(value, bool) else "a boolean (true/false)"
    if annotation == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "an integer"
    if annotation == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else "a number"
    if annotation == "str":
        return None if isinstance(value, str) else "a string"
    if annotation.startswith("tuple[float"):
        ok = isinstance(value, (list, tuple)) and len(value) == 2
        ok = ok and all(_type_error("float", v) is None for v in value)
        return None if ok else "a list of two numbers"
    raise TypeError(f"unsupported setting annotation {annotation!r}")


def parse_settings(cls: type, values: dict[str, Any], origins: dict[str, str], section: str):
    """Build ``cls`` from a section's ``values``; ``origins[key]`` names where each key came from
    (a file or ``--set``), so every error points at the file and key to fix."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    parsed = {}
    for key, value in values.items():
        where = f"{origins.get(key, '?')}: [{section}] {key}"
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{where}: unknown key{hint} (valid keys: {', '.join(fields)})")
        expected = _type_error(str(fields[key].type), value)
        if expected is not None:
            raise ConfigError(f"{where}: expected {expected}, got {value!r}")
        choices = fields[key].metadata["choices"]
        if choices and value not in choices:
            raise ConfigError(f"{where}: expected one of {list(choices)}, got {value!r}")
        if isinstance(value, list):
            value = tuple(float(v) for v in value)
        elif str(fields[key].type) == "float":
            value = float(value)
        parsed[key] = value
    return cls(**parsed)


def check_train_settings(train: TrainSettings, origin: str) -> None:
    """Ranges that the types alone do not express."""
    positive = ("steps", "batch_size", "grad_accum", "log_every", "eval_every", "eval_batches")
    positive += ("checkpoint_every", "keep_checkpoints")
    for name in positive:
        if getattr(train, name) < 1:
            raise ConfigError(f"{origin}: [train] {name} must be >= 1, got {getattr(train, name)}")
    for name in ("seq_len", "warmup_steps", "sample_length"):
        if getattr(train, name) < 0:
            raise ConfigError(f"{origin}: [train] {name} must be >= 0, got {getattr(train, name)}")
    if train.lr <= 0 or not 0 <= train.min_lr_ratio <= 1:
        raise ConfigError(
            f"{origin}: [train] needs lr > 0 and 0 <= min_lr_ratio <= 1, "
            f"got lr={train.lr}, min_lr_ratio={train.min_lr_ratio}"
        )
    if train.grad_clip < 0 or train.weight_decay < 0 or train.sample_temperature < 0:
        raise ConfigError(
            f"{origin}: [train] grad_clip, weight_decay and sample_temperature must be >= 0, got "
            f"{train.grad_clip}, {train.weight_decay}, {train.sample_temperature}"
        )


def check_data_settings(data: DataSettings, origin: str) -> None:
    if not 0 < data.val_fraction < 1:
        raise ConfigError(
            f"{origin}: [data] val_fraction must be in (0, 1), got {data.val_fraction}"
        )
