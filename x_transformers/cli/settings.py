"""The ``[train]`` and ``[data]`` sections of a run configuration: typed, documented, validated.

The model sections (``[wrapper]``, ``[attn_layers]``, ``[autoregressive]``) hold the library's own
keywords and are validated by the library; these two sections belong to the command line, so they
are declared here, one field per key, each with what it does and the values it accepts. Every
number must be finite (TOML reads ``nan`` and ``inf``): a NaN learning rate would otherwise train
silently on NaN.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import CLIError, ConfigError


@dataclass(frozen=True)
class Range:
    """The values a numeric key accepts: ``low``/``high`` bounds, each closed unless ``*_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


POSITIVE, NON_NEGATIVE = Range(low=1), Range(low=0)


def setting(
    default: Any, doc: str, choices: tuple[str, ...] = (), valid: Range | None = None
) -> Any:
    """A dataclass field for one configuration key (``choices`` restricts a string, ``valid``
    a number or each number of a list)."""
    return field(default=default, metadata={"doc": doc, "choices": choices, "valid": valid})


@dataclass(frozen=True)
class TrainSettings:
    """How to optimise: AdamW ("Decoupled Weight Decay Regularization", 1711.05101) with linear
    warmup and cosine decay ("SGDR", 1608.03983)."""

    steps: int = setting(
        1000, "optimizer steps of the whole run (the schedule spans them)", valid=POSITIVE
    )
    batch_size: int = setting(16, "sequences per micro-batch, per process", valid=POSITIVE)
    grad_accum: int = setting(
        1, "micro-batches accumulated into one optimizer step", valid=POSITIVE
    )
    seq_len: int = setting(
        0, "tokens per training sequence; 0 means wrapper.max_seq_len", valid=NON_NEGATIVE
    )
    lr: float = setting(3e-4, "peak learning rate", valid=Range(low=0, low_open=True))
    min_lr_ratio: float = setting(
        0.1, "final learning rate of the cosine decay, as a fraction of lr", valid=Range(0, 1)
    )
    warmup_steps: int = setting(100, "steps of linear warmup from 0 to lr", valid=NON_NEGATIVE)
    weight_decay: float = setting(
        0.1, "AdamW weight decay (matrices only; not biases or norms)", valid=NON_NEGATIVE
    )
    betas: tuple[float, float] = setting(
        (0.9, 0.95), "AdamW betas", valid=Range(0, 1, high_open=True)
    )
    grad_clip: float = setting(
        1.0, "clip the gradient norm to this value; 0 turns clipping off", valid=NON_NEGATIVE
    )
    skip_nonfinite_steps: int = setting(
        0,
        "non-finite steps (loss or gradient norm NaN/inf) skipped without an update before the "
        "run stops; 0 stops at the first. Above 0 every step is checked before its update "
        "(a host sync per step on accelerators)",
        valid=NON_NEGATIVE,
    )
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
    log_every: int = setting(
        10,
        "steps between progress log lines when stdout is not a terminal; on accelerators also "
        "the steps between finiteness checks (the loop never waits for the device in between)",
        valid=POSITIVE,
    )
    eval_every: int = setting(
        100, "steps between validations (and printed samples)", valid=POSITIVE
    )
    eval_batches: int = setting(
        8, "micro-batches of validation windows per validation", valid=POSITIVE
    )
    checkpoint_every: int = setting(
        500, "steps between checkpoints (one is always written last)", valid=POSITIVE
    )
    keep_checkpoints: int = setting(2, "how many of the newest checkpoints to keep", valid=POSITIVE)
    sample_length: int = setting(
        200, "bytes generated for the sample printed at each validation", valid=NON_NEGATIVE
    )
    sample_prompt: str = setting("", "prompt of that sample; empty takes text from validation")
    sample_temperature: float = setting(
        0.8, "temperature of that sample (0 is greedy)", valid=NON_NEGATIVE
    )


@dataclass(frozen=True)
class DataSettings:
    """Where the bytes come from and how they are split (the ``--data`` flag sets ``path``)."""

    path: str = setting("", "text file, .gz of one, or folder; empty: the built-in corpus")
    val_fraction: float = setting(
        0.05,
        "fraction of the corpus (its end) held out for validation",
        valid=Range(0, 1, low_open=True, high_open=True),
    )


def setting_docs(cls: type) -> dict[str, str]:
    return {f.name: f.metadata["doc"] for f in dataclasses.fields(cls)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_error(annotation: str, value: Any) -> str | None:
    """None when ``value`` fits the field's annotation, else what was expected."""
    if annotation == "bool":
        return None if isinstance(value, bool) else "a boolean (true/false)"
    if annotation == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "an integer"
    if annotation == "float":
        return None if _is_number(value) and math.isfinite(value) else "a finite number"
    if annotation == "str":
        return None if isinstance(value, str) else "a string"
    if annotation.startswith("tuple[float"):
        ok = isinstance(value, (list, tuple)) and len(value) == 2
        ok = ok and all(_type_error("float", v) is None for v in value)
        return None if ok else "a list of two finite numbers"
    raise TypeError(f"unsupported setting annotation {annotation!r}")


def _range_error(annotation: str, valid: Range | None, value: Any) -> str | None:
    """None when ``value`` (or each of its numbers) is in ``valid``, else what was expected."""
    if valid is None:
        return None
    if isinstance(value, (list, tuple)):
        return None if all(v in valid for v in value) else f"{len(value)} numbers {valid}"
    kind = "an integer" if annotation == "int" else "a number"
    return None if value in valid else f"{kind} {valid}"


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
        annotation, metadata = str(fields[key].type), fields[key].metadata
        expected = _type_error(annotation, value) or _range_error(
            annotation, metadata.get("valid"), value
        )
        if expected is not None:
            raise ConfigError(f"{where}: expected {expected}, got {_shown(value)}")
        choices = metadata["choices"]
        if choices and value not in choices:
            raise ConfigError(f"{where}: expected one of {list(choices)}, got {value!r}")
        if isinstance(value, list):
            value = tuple(float(v) for v in value)
        elif annotation == "float":
            value = float(value)
        parsed[key] = value
    return cls(**parsed)


def _shown(value: Any) -> str:
    """A value as the user wrote it in TOML (``nan``, ``inf``, ``[1.5, 0.95]``)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return repr(value)


def check_option(
    flag: str, value: float | None, valid: Range | None = None, integer: bool = False
) -> None:
    """A number given on the command line (``--temperature``, ``--batch-size``, ...) must be
    finite (argparse reads ``nan`` and ``inf`` as floats) and in ``valid`` when given; ``None``
    (the flag not given) passes."""
    if value is None or (math.isfinite(value) and (valid is None or value in valid)):
        return
    kind = "an integer" if integer else "a finite number" if valid is None else "a number"
    raise CLIError(f"{flag}: expected {kind}{f' {valid}' if valid else ''}, got {value!r}")
