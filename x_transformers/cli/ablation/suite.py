"""Suite files: a ``train`` configuration (the base) plus the variants to compare with it.

A suite file is a run configuration with the same sections and keywords as ``xtransformers train``
configs, and two more sections::

    [suite]                     # how to run the comparison (every key optional)
    description = "..."
    seeds = 3                   # runs per variant (--seeds overrides it)
    evaluations = 8             # validations per run (sets train.eval_every)

    [wrapper]                   # the base: exactly a train config
    num_tokens = 256
    max_seq_len = 64
    [attn_layers]
    type = "Decoder"
    dim = 64
    ...

    [variants.rotary]           # the base plus a few keys of its sections
    wrapper.use_abs_pos_emb = false
    attn_layers.rotary_pos_emb = true

Every variant trains on the same batches for the same number of steps as the base, so a variant
may not change the budget or the data (``[data]``, and ``steps``, ``batch_size``, ``grad_accum``,
``seq_len``, ``seed``, ``eval_every``, ``eval_batches`` of ``[train]``). Every variant is resolved
and built (on the meta device, so nothing is allocated) before the first run starts; errors name
the file, the variant, the section and the key, with the library's own "did you mean".
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ..config import MODEL_SECTIONS, RunConfig, build_model, read_config_file, read_preset, resolve
from ..errors import ConfigError
from ..settings import TrainSettings, parse_settings, setting

try:
    import tomllib
except ImportError:  # Python 3.10: the tomli package of the cli extra
    import tomli as tomllib

SUITES_PACKAGE = "x_transformers.cli"
SUITES_FOLDER = "suites"
VARIANT_SECTIONS = (*MODEL_SECTIONS, "train")
# keys that would give a variant other batches, another budget or other validation points
FIXED_TRAIN_KEYS = ("steps", "batch_size", "grad_accum", "seq_len", "seed")
FIXED_TRAIN_KEYS += ("eval_every", "eval_batches")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


@dataclass(frozen=True)
class SuiteSettings:
    """The ``[suite]`` section."""

    description: str = setting("", "what the suite compares (shown in the report)")
    base_name: str = setting("base", "name of the base configuration in the tables")
    preset: str = setting("", "start the base from this shipped preset; the file's keys override")
    seeds: int = setting(3, "seeds per variant (--seeds overrides it)")
    evaluations: int = setting(8, "validations per run: train.eval_every = ceil(steps / this)")
    extrapolation: tuple[int, ...] = setting(
        (), "multiples of the training length to evaluate at, e.g. [1, 2, 4]; [] for none"
    )
    extrapolation_windows: int = setting(
        32, "validation windows of the longest length used for the extrapolation evaluation"
    )


@dataclass
class Suite:
    """A loaded suite: one resolved configuration per variant (the base first)."""

    name: str
    origin: str
    settings: SuiteSettings
    variants: dict[str, RunConfig]
    params: dict[str, int]

    @property
    def base_name(self) -> str:
        return self.settings.base_name

    @property
    def base(self) -> RunConfig:
        return self.variants[self.base_name]


# ---------------------------------------------------------------------------- reading


def suite_names() -> list[str]:
    """The suites shipped with the package."""
    folder = resources.files(SUITES_PACKAGE) / SUITES_FOLDER
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def read_suite(source: str) -> tuple[dict[str, Any], str, str]:
    """(raw sections, origin for error messages, suite name) of a shipped suite or a file."""
    looks_like_file = Path(source).suffix in (".toml", ".yaml", ".yml") or "/" in source
    if looks_like_file or source not in suite_names():
        if not looks_like_file:
            close = difflib.get_close_matches(source, suite_names(), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"unknown suite {source!r}{hint} (shipped suites: {', '.join(suite_names())}; "
                "or give the path of a .toml suite file)"
            )
        if not Path(source).is_file():
            raise ConfigError(f"suite file {source!r} does not exist")
        raw, origin = read_config_file(source)
        return raw, origin, Path(source).stem
    resource = resources.files(SUITES_PACKAGE) / SUITES_FOLDER / f"{source}.toml"
    origin = f"suite '{source}'"
    try:
        raw = tomllib.loads(resource.read_text("utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{origin}: not valid TOML: {error}") from None
    return raw, origin, source


def _suite_settings(values: Any, origin: str) -> SuiteSettings:
    if not isinstance(values, dict):
        raise ConfigError(f"{origin}: [suite] must be a table of keys, got {values!r}")
    values = dict(values)
    multiples = values.pop("extrapolation", ())
    parsed = parse_settings(SuiteSettings, values, dict.fromkeys(values, origin), "suite")
    where = f"{origin}: [suite] extrapolation"
    if not isinstance(multiples, (list, tuple)) or not all(
        isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in multiples
    ):
        raise ConfigError(f"{where}: expected a list of positive integers, got {multiples!r}")
    multiples = tuple(sorted(set(multiples)))
    if any(multiples[-1] % m for m in multiples):
        raise ConfigError(
            f"{where}: every multiple must divide the largest ({multiples[-1]}), so that all "
            f"lengths score the same bytes; got {list(multiples)}"
        )
    parsed = dataclasses.replace(parsed, extrapolation=multiples)
    for key in ("seeds", "evaluations", "extrapolation_windows"):
        if getattr(parsed, key) < 1:
            raise ConfigError(f"{origin}: [suite] {key} must be >= 1, got {getattr(parsed, key)}")
    if not NAME_PATTERN.fullmatch(parsed.base_name):
        raise ConfigError(f"{origin}: [suite] base_name: {_name_problem(parsed.base_name)}")
    return parsed


def _name_problem(name: str) -> str:
    return (
        f"{name!r} cannot name a run folder; use letters, digits and _ . + - "
        "(starting with a letter or digit)"
    )


# ---------------------------------------------------------------------------- resolving


def load_suite(
    source: str,
    overrides: list[str] = (),
    steps: int | None = None,
    data: str | None = None,
) -> Suite:
    """Read, resolve and check a suite: ``overrides`` (``section.key=value``), ``steps`` and
    ``data`` apply to the base and so to every variant."""
    raw, origin, name = read_suite(source)
    raw = dict(raw)
    settings = _suite_settings(raw.pop("suite", {}), origin)
    variants_raw = raw.pop("variants", {})
    if not isinstance(variants_raw, dict):
        raise ConfigError(f"{origin}: [variants] must hold one table per variant")
    if settings.preset:
        preset, _ = read_preset(settings.preset)
        raw = _merge(preset, raw)
    overrides = list(overrides)
    if steps is not None:
        if steps < 1:
            raise ConfigError(f"--steps must be >= 1, got {steps}")
        overrides.append(f"train.steps={steps}")
    if data:
        overrides.append(f"data.path={json.dumps(data)}")
    base = _finish(resolve(raw, origin, overrides, name=settings.base_name), settings)
    params = {settings.base_name: _check_builds(base)}
    variants = {settings.base_name: base}
    for variant, values in variants_raw.items():
        where = f"{origin} [variants.{variant}]"
        if not NAME_PATTERN.fullmatch(variant):
            raise ConfigError(f"{where}: {_name_problem(variant)}")
        if variant == settings.base_name:
            raise ConfigError(f"{where}: the base is already called {variant!r}; rename one")
        merged = _merge(raw, _variant_sections(values, where))
        config = _finish(resolve(merged, where, overrides, name=variant), settings)
        _check_same_budget(config, base, where)
        params[variant] = _check_builds(config)
        variants[variant] = config
    for variant, config in variants.items():
        where = origin if variant == settings.base_name else f"{origin} [variants.{variant}]"
        _check_extrapolation(config, settings, where)
    return Suite(name, origin, settings, variants, params)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Section-wise union; ``extra``'s keys win."""
    merged = {section: dict(values or {}) for section, values in base.items()}
    for section, values in extra.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section].update(values)
        else:
            merged[section] = values
    return merged


def _variant_sections(values: Any, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: a variant is a table of section.key = value, got {values!r}")
    for section, keys in values.items():
        if section == "data":
            raise ConfigError(
                f"{where}: [data]: every variant trains on the base's data; set it in the base "
                "or with --data"
            )
        if section not in VARIANT_SECTIONS:
            close = difflib.get_close_matches(section, VARIANT_SECTIONS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"{where}: '{section}' is not a section{hint}; a variant sets keys of the base's "
                f"sections ({', '.join(VARIANT_SECTIONS)}), e.g. attn_layers.rotary_pos_emb = true"
            )
        if not isinstance(keys, dict):
            raise ConfigError(f"{where}: [{section}] must be a table of keys, got {keys!r}")
    train = values.get("train", {})
    parse_settings(TrainSettings, train, dict.fromkeys(train, where), "train")  # located errors
    for key in FIXED_TRAIN_KEYS:
        if key in train:
            raise ConfigError(
                f"{where}: [train] {key}: a variant cannot change it: every variant trains on the "
                "same batches for the same budget (set it in the base, or with --steps / --set)"
            )
    return values


def _finish(config: RunConfig, settings: SuiteSettings) -> RunConfig:
    """Validations spread evenly over the run, unless the file sets train.eval_every."""
    if ("train", "eval_every") not in config.origins:
        every = max(1, math.ceil(config.train.steps / settings.evaluations))
        config.train = dataclasses.replace(config.train, eval_every=every)
    return config


def _check_same_budget(config: RunConfig, base: RunConfig, where: str) -> None:
    if config.seq_len != base.seq_len:
        raise ConfigError(
            f"{where}: [wrapper] max_seq_len: the variant trains on {config.seq_len}-byte "
            f"windows, the base on {base.seq_len}; every variant must see the same batches "
            "(set train.seq_len in the base to keep the windows fixed)"
        )


def _check_builds(config: RunConfig) -> int:
    """Build the model on the meta device (no memory, no time) and count its parameters."""
    with torch.device("meta"):
        net, _ = build_model(config)
    return sum(p.numel() for p in net.parameters())


def _check_extrapolation(config: RunConfig, settings: SuiteSettings, where: str) -> None:
    if not settings.extrapolation:
        return
    longest = settings.extrapolation[-1] * config.seq_len
    max_seq_len = config.model["wrapper"]["max_seq_len"]
    if longest > max_seq_len:
        raise ConfigError(
            f"{where}: [wrapper] max_seq_len = {max_seq_len}: the extrapolation evaluation "
            f"reaches {settings.extrapolation[-1]} x {config.seq_len} = {longest} bytes; raise "
            "max_seq_len and keep the training length with train.seq_len"
        )
