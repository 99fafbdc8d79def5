"""Run configurations: a TOML (or YAML) file holding exactly the library's keywords.

A configuration has five sections::

    [wrapper]          keywords of TransformerWrapper (num_tokens, max_seq_len, emb_dropout, ...)
    [attn_layers]      type = "Decoder", then its keywords (dim, depth, heads, rotary_pos_emb, ...)
    [autoregressive]   keywords of AutoregressiveWrapper (mask_prob, ...)
    [train]            the optimiser and loop (see settings.TrainSettings)
    [data]             the corpus and its split (see settings.DataSettings)

so any feature of the library is one line away. ``--set section.key=value`` overrides one key
(the value is read as a TOML value, falling back to a plain string). Every error names the file
(or ``--set``) and the key it comes from; keyword errors are the library's own, with its
"did you mean".
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import x_transformers

from .data import BYTE_VOCAB_SIZE
from .errors import ConfigError, read_text_file
from .settings import (
    DataSettings,
    TrainSettings,
    parse_settings,
)

try:
    import tomllib
except ImportError:  # Python 3.10: the same parser as the tomli package (the cli extra)
    import tomli as tomllib

MODEL_SECTIONS = ("wrapper", "attn_layers", "autoregressive")
SECTIONS = (*MODEL_SECTIONS, "train", "data")
LAYER_TYPES = ("Decoder", "Encoder", "AttentionLayers", "CrossAttender")
WRAPPER_TYPES = ("TransformerWrapper",)


@dataclass
class RunConfig:
    """A resolved configuration: the model sections as the library's keyword dicts, plus the
    parsed train and data settings. ``origins[(section, key)]`` says where each value came from."""

    model: dict[str, dict[str, Any]]
    train: TrainSettings
    data: DataSettings
    name: str = "run"
    origins: dict[tuple[str, str | None], str] = field(default_factory=dict)

    @property
    def seq_len(self) -> int:
        return self.train.seq_len or self.model["wrapper"]["max_seq_len"]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        sections = {name: dict(self.model[name]) for name in MODEL_SECTIONS}
        sections["train"] = {k: _plain(v) for k, v in dataclasses.asdict(self.train).items()}
        sections["data"] = dataclasses.asdict(self.data)
        return sections


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ---------------------------------------------------------------------------- reading


def preset_names() -> list[str]:
    folder = resources.files("x_transformers.cli") / "presets"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def read_preset(name: str) -> tuple[dict[str, Any], str]:
    if name not in preset_names():
        close = difflib.get_close_matches(name, preset_names(), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown preset {name!r}{hint} (presets: {', '.join(preset_names())})")
    text = (resources.files("x_transformers.cli") / "presets" / f"{name}.toml").read_text("utf-8")
    origin = f"preset '{name}'"
    return _parse_toml(text, origin), origin


def read_config_file(path: str | Path) -> tuple[dict[str, Any], str]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = read_text_file(path, "config file", ConfigError)
    if path.suffix in (".yaml", ".yml"):
        return _parse_yaml(text, str(path)), str(path)
    if path.suffix != ".toml":
        raise ConfigError(f"{path}: config files must end in .toml, .yaml or .yml")
    return _parse_toml(text, str(path)), str(path)


def _parse_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{origin}: not valid TOML: {error}") from None


def _parse_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            f"{origin}: YAML configs need PyYAML (pip install pyyaml), or use a .toml file"
        ) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{origin}: not valid YAML: {error}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{origin}: expected a mapping of sections, got {type(loaded).__name__}")
    return loaded


def parse_override(text: str) -> tuple[str, str, Any]:
    """``'attn_layers.depth=4'`` -> ``('attn_layers', 'depth', 4)``."""
    match = re.fullmatch(r"\s*([A-Za-z_]\w*)\.([A-Za-z_]\w*)\s*=(.*)", text, flags=re.DOTALL)
    if match is None:
        raise ConfigError(
            f"--set {text!r}: expected section.key=value, e.g. --set attn_layers.depth=4 "
            f"(sections: {', '.join(SECTIONS)})"
        )
    section, key, raw = match.groups()
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word or a path: take it as a string
    return section, key, value


# ---------------------------------------------------------------------------- resolving


def resolve(
    raw: dict[str, Any], origin: str, overrides: list[str] = (), name: str = "run"
) -> RunConfig:
    """Check the sections, apply ``--set`` overrides, parse the train and data settings."""
    raw = {  # an empty YAML section reads as None
        section: {} if values is None else dict(values) if isinstance(values, dict) else values
        for section, values in raw.items()
    }
    origins: dict[tuple[str, str | None], str] = {}
    for section, values in raw.items():
        _check_section(section, values, origin)
        origins[(section, None)] = origin
        origins.update({(section, key): origin for key in values})
    for text in overrides:
        section, key, value = parse_override(text)
        _check_section(section, {}, f"--set {text}")
        raw.setdefault(section, {})[key] = value
        origins[(section, key)] = f"--set {section}.{key}"
        origins.setdefault((section, None), "--set")
    model = {section: dict(raw.get(section, {})) for section in MODEL_SECTIONS}

    def section_origins(section):
        return {key: origins[(section, key)] for key in raw.get(section, {})}

    train = parse_settings(TrainSettings, raw.get("train", {}), section_origins("train"), "train")
    data = parse_settings(DataSettings, raw.get("data", {}), section_origins("data"), "data")
    config = RunConfig(model=model, train=train, data=data, name=name, origins=origins)
    _check_wrapper_section(config, origin)
    return config


def _check_section(section: str, values: Any, origin: str) -> None:
    if section not in SECTIONS:
        close = difflib.get_close_matches(section, SECTIONS, n=1)
        hint = f"; did you mean [{close[0]}]?" if close else ""
        raise ConfigError(
            f"{origin}: unknown section [{section}]{hint} (sections: {', '.join(SECTIONS)})"
        )
    if not isinstance(values, dict):
        raise ConfigError(f"{origin}: [{section}] must be a table of keys, got {values!r}")


def _check_wrapper_section(config: RunConfig, origin: str) -> None:
    wrapper = config.model["wrapper"]
    for key in ("num_tokens", "max_seq_len"):
        if key not in wrapper:
            raise ConfigError(f"{origin}: [wrapper] needs '{key}' (e.g. num_tokens = 256)")
    num_tokens, max_seq_len = wrapper["num_tokens"], wrapper["max_seq_len"]
    if not _is_int(num_tokens) or num_tokens < BYTE_VOCAB_SIZE:
        where = config.origins.get(("wrapper", "num_tokens"), origin)
        raise ConfigError(
            f"{where}: [wrapper] num_tokens: byte-level tokens need an integer >= "
            f"{BYTE_VOCAB_SIZE}, got {num_tokens!r}"
        )
    if not _is_int(max_seq_len) or max_seq_len < 1:
        where = config.origins.get(("wrapper", "max_seq_len"), origin)
        raise ConfigError(
            f"{where}: [wrapper] max_seq_len: expected a positive integer, got {max_seq_len!r}"
        )
    if not 1 <= config.seq_len <= max_seq_len:
        where = config.origins.get(("train", "seq_len"), origin)
        raise ConfigError(
            f"{where}: [train] seq_len must be between 1 and wrapper.max_seq_len={max_seq_len!r}, "
            f"got {config.train.seq_len}"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def config_from_dict(sections: dict[str, Any], origin: str) -> RunConfig:
    """Rebuild a configuration stored in a checkpoint manifest."""
    return resolve(sections, origin, name=origin)


# ---------------------------------------------------------------------------- building


def _wrap_library_error(config: RunConfig, section: str, error: Exception) -> ConfigError:
    """Point a library error at the file and key it comes from: the key of ``section`` that the
    message quotes first (a "did you mean" suggestion comes after it), or the section itself."""
    message = str(error)
    quoted = {key: message.find(f"'{key}'") for key in config.model[section]}
    quoted = {key: position for key, position in quoted.items() if position >= 0}
    if quoted:
        key = min(quoted, key=quoted.get)
        where = config.origins.get((section, key), "?")
        return ConfigError(f"{where}: [{section}] {key}: {message}")
    where = config.origins.get((section, None), "?")
    return ConfigError(f"{where}: [{section}]: {message}")


def _class_of(config: RunConfig, section: str, allowed: tuple[str, ...], default: str | None):
    kind = config.model[section].get("type", default)
    where = config.origins.get((section, "type"), config.origins.get((section, None), "?"))
    if kind not in allowed:
        close = difflib.get_close_matches(str(kind), allowed, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        needed = "" if kind is not None else " (required)"
        raise ConfigError(
            f"{where}: [{section}] type{needed}: expected one of {list(allowed)}, "
            f"got {kind!r}{hint}"
        )
    return getattr(x_transformers, kind)


def build_model(config: RunConfig):
    """The ``TransformerWrapper`` (``net``) and its ``AutoregressiveWrapper``, through the
    library's public classes."""
    layers_cls = _class_of(config, "attn_layers", LAYER_TYPES, None)
    wrapper_cls = _class_of(config, "wrapper", WRAPPER_TYPES, "TransformerWrapper")
    layer_kwargs = {k: v for k, v in config.model["attn_layers"].items() if k != "type"}
    wrapper_kwargs = {k: v for k, v in config.model["wrapper"].items() if k != "type"}
    try:
        layers = layers_cls(**layer_kwargs)
    except (TypeError, ValueError, NotImplementedError) as error:
        raise _wrap_library_error(config, "attn_layers", error) from error
    try:
        net = wrapper_cls(**wrapper_kwargs, attn_layers=layers)
    except (TypeError, ValueError, NotImplementedError) as error:
        raise _wrap_library_error(config, "wrapper", error) from error
    try:
        model = x_transformers.AutoregressiveWrapper(net, **config.model["autoregressive"])
    except (TypeError, ValueError, NotImplementedError) as error:
        raise _wrap_library_error(config, "autoregressive", error) from error
    return net, model


# ---------------------------------------------------------------------------- writing


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as a TOML value")


def to_toml(config: RunConfig) -> str:
    """The resolved configuration as a TOML file that ``--config`` reads back unchanged."""
    lines = [f"# resolved configuration of run '{config.name}'"]
    for section, values in config.to_dict().items():
        lines.append(f"\n[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"
