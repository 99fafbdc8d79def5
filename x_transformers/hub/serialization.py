"""``save_pretrained`` / ``from_pretrained``: a folder with ``config.json`` (the constructor call,
see :mod:`.config`) and ``model.safetensors`` (the weights; no pickle anywhere).

::

    folder/
      config.json        {"format": "x_transformers", "format_version": 1,
                          "class": "TransformerWrapper", "kwargs": {...},
                          "weights": {"file": "model.safetensors", "bytes": ..., "sha256": ...,
                                      "tied": {"alias name": "stored name"}}}
      model.safetensors  one tensor per state-dict entry; tied weights stored once

Loading is strict and checks everything before a single weight is copied: the format and its
version, the class, the file's size and SHA-256, then every tensor name and shape against the
model the configuration builds. The model is built on the ``meta`` device (no memory) and the
tensors are read straight onto the target device, so a large model is never allocated twice.
A folder of the command line (a run, or one of its checkpoints) loads the same way (see
:mod:`.runs`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..backend import (
    as_device,
    assign_state_dict,
    empty_weights,
    open_safetensors,
    save_safetensors,
)
from ..weight_layout import store_input_major
from .config import (
    CLASS_KEY,
    FORMAT,
    FORMAT_VERSION,
    KWARGS_KEY,
    ConfigError,
    config_to_model,
    model_to_config,
    resolve_class,
)

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
TOP_KEYS = {"format", "format_version", CLASS_KEY, KWARGS_KEY, "weights"}


class WeightsError(ValueError):
    """``model.safetensors`` is missing, truncated, corrupt, or does not fit the model; the
    message names the file and the tensor."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- tied weights


def tied_names(model: nn.Module) -> dict[str, str]:
    """{alias: stored name} for state-dict entries that are the same tensor as an earlier one
    (a module or parameter shared between two places, e.g. ``tie_token_emb``)."""
    first: dict[int, str] = {}
    aliases = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        key = id(tensor)
        if key in first:
            aliases[name] = first[key]
        else:
            first[key] = name
    return aliases


def retie(model: nn.Module, aliases: dict[str, str]) -> None:
    """Make every alias the very tensor of its stored name again (after ``assign=True``)."""
    for alias, stored in aliases.items():
        owner_name, _, attribute = alias.rpartition(".")
        owner = model.get_submodule(owner_name)
        setattr(owner, attribute, model.get_parameter(stored))


# ---------------------------------------------------------------------------- saving


def to_json_text(value, indent: str = "") -> str:
    """JSON with two-space indentation, but lists of plain values on one line, so that
    ``"custom_layers": ["a", "f"]`` reads as it was typed."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {to_json_text(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [inner + to_json_text(v, inner) for v in value]
        return "[\n" + ",\n".join(items) + f"\n{indent}]"
    return json.dumps(value)


def save_pretrained(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``config.json`` and ``model.safetensors`` of ``model`` into the folder ``path``
    (created if needed; the two files are replaced atomically, each on its own)."""
    folder = Path(path)
    config = model_to_config(model)  # refuses unsaveable arguments before writing anything
    aliases = tied_names(model)
    weights = {}
    for name, tensor in model.state_dict().items():
        if name in aliases:
            continue
        if tensor.device.type == "meta":
            raise WeightsError(f"cannot save {name}: the model is on the meta device (no values)")
        weights[name] = tensor.detach().to("cpu").contiguous()
    folder.mkdir(parents=True, exist_ok=True)
    weights_path = folder / WEIGHTS_FILE
    temporary = folder / f".{WEIGHTS_FILE}.tmp-{os.getpid()}"
    save_safetensors(weights, str(temporary), metadata={"format": FORMAT})
    os.replace(temporary, weights_path)
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, **config}
    document["weights"] = {
        "file": WEIGHTS_FILE,
        "bytes": weights_path.stat().st_size,
        "sha256": sha256_of(weights_path),
        "tied": aliases,
    }
    temporary = folder / f".{CONFIG_FILE}.tmp-{os.getpid()}"
    temporary.write_text(to_json_text(document) + "\n", encoding="utf-8")
    os.replace(temporary, folder / CONFIG_FILE)
    return folder


# ---------------------------------------------------------------------------- loading


def read_config(folder: Path) -> dict[str, Any]:
    """The checked ``config.json`` of a saved folder."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path} is missing: {folder} is not a saved model folder")
    try:
        document = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is corrupt or truncated: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path} must hold a JSON object, got {type(document).__name__}")
    if document.get("format") != FORMAT:
        raise ConfigError(f"{path}: key 'format' is {document.get('format')!r}, not {FORMAT!r}")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise ConfigError(
            f"{path}: unknown format_version {version!r} (key 'format_version'); this version "
            f"of x_transformers reads format_version {FORMAT_VERSION}"
        )
    extra = set(document) - TOP_KEYS
    if extra:
        raise ConfigError(f"{path}: unexpected key(s) {sorted(extra)}")
    weights = document.get("weights")
    if not isinstance(weights, dict) or not isinstance(weights.get("tied", {}), dict):
        raise ConfigError(f"{path}: key 'weights' must be an object with a 'tied' object")
    return document


def check_class(cls: type, found: str, source: Path) -> None:
    """``cls.from_pretrained`` loads ``cls`` or one of its subclasses, nothing else."""
    loaded = resolve_class(found, str(source))
    if not issubclass(loaded, cls):
        raise ConfigError(
            f"{source}: key 'class' is {found!r}, not a {cls.__name__}; load it with "
            f"{found}.from_pretrained"
        )


def verify_weights_file(path: Path, record: dict[str, Any]) -> None:
    """Size and SHA-256 of ``path`` against what ``config.json`` recorded."""
    if not path.is_file():
        raise WeightsError(f"{path} is missing")
    size = path.stat().st_size
    if "bytes" in record and size != record["bytes"]:
        raise WeightsError(
            f"{path} is truncated or corrupt: {size} bytes, config.json says {record['bytes']}"
        )
    if "sha256" in record and sha256_of(path) != record["sha256"]:
        raise WeightsError(f"{path} is corrupt: its SHA-256 differs from the one in config.json")


def read_weights(
    path: Path, model: nn.Module, device, dtype, rename=None, ignore=frozenset()
) -> dict[str, Tensor]:
    """Every stored tensor of ``path``, checked by name and shape against ``model`` (built on
    meta) before any is read, then read onto ``device`` (cast to ``dtype`` if floating).
    ``rename`` maps a stored name to the model's; stored names in ``ignore`` are skipped."""
    rename = rename or (lambda name: name)
    aliases = tied_names(model)
    expected = {n: tuple(t.shape) for n, t in model.state_dict().items() if n not in aliases}
    try:
        with open_safetensors(str(path), device) as handle:
            stored = {rename(n): n for n in handle.keys() if n not in ignore}
            _check_names(path, expected, stored)
            tensors = {}
            for name, shape in expected.items():
                found = tuple(handle.get_slice(stored[name]).get_shape())
                if found != shape:
                    raise WeightsError(
                        f"{path}: tensor {name!r} has shape {found}, the model expects {shape}"
                    )
            for name in expected:
                tensors[name] = _cast(handle.get_tensor(stored[name]), dtype)
    except WeightsError:
        raise
    except Exception as error:  # safetensors' own SafetensorError, OSError, ...
        raise WeightsError(f"{path} cannot be read as safetensors: {error}") from None
    return tensors


def _check_names(path: Path, expected: dict, stored: dict) -> None:
    missing = sorted(expected.keys() - stored.keys())
    unexpected = sorted(stored.keys() - expected.keys())
    if missing:
        raise WeightsError(f"{path}: missing tensor {missing[0]!r} ({len(missing)} missing)")
    if unexpected:
        raise WeightsError(
            f"{path}: unexpected tensor {unexpected[0]!r} ({len(unexpected)} not in the model)"
        )


def _cast(tensor: Tensor, dtype) -> Tensor:
    if dtype is None or not tensor.is_floating_point():
        return tensor
    return tensor.to(dtype)


def build_on_meta(config: dict, source: Path) -> nn.Module:
    """The model of ``config`` with every parameter on the meta device (no memory)."""
    with empty_weights():
        return config_to_model(config, str(source))


def load_weights_into(model: nn.Module, tensors: dict[str, Tensor], source: Path) -> nn.Module:
    """Put ``tensors`` (checked) into the meta-built ``model``, re-tie shared weights, store the
    linear weights input-major (:mod:`x_transformers.weight_layout`), and make sure nothing is
    left on meta."""
    aliases = tied_names(model)
    assign_state_dict(model, tensors)
    retie(model, aliases)
    store_input_major(model)  # assigned tensors come row-major
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.device.type == "meta":
            raise WeightsError(f"{source}: tensor {name!r} was not loaded")
    return model.eval()


def from_pretrained(cls: type, path: str | os.PathLike, device=None, dtype=None) -> nn.Module:
    """The ``cls`` model saved in the folder ``path`` by ``save_pretrained``, or the newest
    model of a command-line run folder (or checkpoint). Returned in eval mode, on ``device``
    (default CPU), with floating weights cast to ``dtype`` (default: as stored)."""
    folder = Path(path)
    device = as_device("cpu" if device is None else device)
    if not (folder / CONFIG_FILE).is_file():
        from .runs import is_cli_folder, load_cli_run

        if is_cli_folder(folder):
            return load_cli_run(cls, folder, device, dtype)
    document = read_config(folder)
    source = folder / CONFIG_FILE
    check_class(cls, document[CLASS_KEY], source)
    weights = document["weights"]
    weights_path = folder / WEIGHTS_FILE
    verify_weights_file(weights_path, weights)
    model = build_on_meta(
        {CLASS_KEY: document[CLASS_KEY], KWARGS_KEY: document[KWARGS_KEY]}, source
    )
    if tied_names(model) != weights["tied"]:
        raise WeightsError(
            f"{source}: tied weights {weights['tied']} differ from the model's {tied_names(model)}"
        )
    tensors = read_weights(weights_path, model, device, dtype)
    return load_weights_into(model, tensors, weights_path)


def load_pretrained(path: str | os.PathLike, device=None, dtype=None) -> nn.Module:
    """Whatever model ``path`` holds (the class named in its ``config.json``); see
    :func:`from_pretrained`."""
    from .mixin import PretrainedMixin

    return from_pretrained(PretrainedMixin, path, device=device, dtype=dtype)
