"""Loading a command-line run with ``from_pretrained``.

A run folder (``xtransformers train --out runs/tiny``) keeps its checkpoints in
``checkpoints/step-XXXXXXXX/``, each with a ``manifest.json`` (the resolved run configuration,
sizes and SHA-256 of the files) and a ``model.safetensors`` (the ``TransformerWrapper``'s weights).
``TransformerWrapper.from_pretrained(run)`` takes the newest checkpoint (or the checkpoint folder
given), builds the model its ``[wrapper]`` and ``[attn_layers]`` sections describe, and loads
it with the same strict checks as a ``save_pretrained`` folder;
``AutoregressiveWrapper.from_pretrained`` adds the ``[autoregressive]`` section around it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .config import CLASS_KEY, KWARGS_KEY, ConfigError, resolve_class
from .serialization import WeightsError, build_on_meta, load_weights_into, read_weights, tied_names

MANIFEST_FILE = "manifest.json"


def is_cli_folder(folder: Path) -> bool:
    """A run folder or one of its checkpoints."""
    return (folder / MANIFEST_FILE).is_file() or (folder / "checkpoints").is_dir()


def run_model_config(sections: dict[str, Any], cls: type, source: Path) -> tuple[dict, str]:
    """The model config (as in ``config.json``) of a run's configuration sections for ``cls``, and
    the prefix of the stored weight names in that model."""
    try:
        wrapper = dict(sections["wrapper"])
        layers = dict(sections["attn_layers"])
        autoregressive = dict(sections.get("autoregressive", {}))
    except (KeyError, TypeError) as error:
        raise ConfigError(f"{source}: the run configuration lacks the section {error}") from None
    layers_config = {CLASS_KEY: layers.pop("type", None), KWARGS_KEY: layers}
    net_class = wrapper.pop("type", "TransformerWrapper")
    net = {CLASS_KEY: net_class, KWARGS_KEY: {**wrapper, "attn_layers": layers_config}}
    if issubclass(resolve_class(net_class, str(source)), cls):
        return net, ""
    outer = resolve_class("AutoregressiveWrapper", str(source))
    if issubclass(outer, cls):
        return {CLASS_KEY: outer.__name__, KWARGS_KEY: {"net": net, **autoregressive}}, "net."
    raise ConfigError(
        f"{source}: a command-line run holds a {net_class} and its AutoregressiveWrapper, "
        f"not a {cls.__name__}"
    )


def load_cli_run(cls: type, folder: Path, device, dtype) -> nn.Module:
    """The newest model of the run ``folder`` (or of the checkpoint ``folder``) as a ``cls``."""
    from ..cli.checkpoint import MODEL_FILE, find_checkpoint, read_manifest, verify_file
    from ..cli.errors import CheckpointError

    try:
        checkpoint = find_checkpoint(folder)
        manifest = read_manifest(checkpoint)
        weights_path = verify_file(checkpoint, manifest, MODEL_FILE)
    except CheckpointError as error:
        raise WeightsError(str(error)) from None
    source = checkpoint / MANIFEST_FILE
    config, prefix = run_model_config(manifest["config"], cls, source)
    model = build_on_meta(config, source)
    # the command line stores every state-dict entry, tied ones included
    ignored = {name[len(prefix) :] for name in tied_names(model)}
    tensors = read_weights(
        weights_path, model, device, dtype, rename=lambda name: prefix + name, ignore=ignored
    )
    return load_weights_into(model, tensors, weights_path)
