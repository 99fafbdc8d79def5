"""Checkpoints that lose nothing and are never half-written or half-loaded.

A checkpoint is a folder ``<run>/checkpoints/step-00001200/`` holding::

    model.safetensors   the TransformerWrapper's weights (safetensors: no pickle)
    train_state.pt      optimizer state, per-rank RNG states, step (tensors and plain values only,
                        read back with torch.load(weights_only=True))
    manifest.json       format, step, the resolved run configuration, the data fingerprint, and
                        the size and SHA-256 of each file

It is written into a hidden temporary folder, every file fsync'ed, then renamed into place with
``os.replace`` (atomic): a process killed mid-write leaves only a stray ``.tmp-*`` folder, which is
ignored and removed by the next save, and the previous checkpoint stays the latest. Loading checks
the manifest, every size and every checksum, then every tensor name and shape against the model,
before anything is copied into the model; any mismatch is a :class:`CheckpointError` naming the
file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .errors import CheckpointError, import_safetensors

FORMAT = "x_transformers.cli.checkpoint/1"
MODEL_FILE, STATE_FILE, MANIFEST_FILE = "model.safetensors", "train_state.pt", "manifest.json"
PREFIX = "step-"


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def step_of(path: Path) -> int:
    return int(path.name[len(PREFIX) :])


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run (renamed into place), oldest first."""
    folder = checkpoints_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
    return sorted((p for p in found if p.name[len(PREFIX) :].isdigit()), key=step_of)


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or the latest checkpoint of a run folder."""
    path = Path(path)
    if (path / MANIFEST_FILE).is_file() or path.name.startswith(PREFIX):
        return path
    if not path.exists():
        raise CheckpointError(f"{path} does not exist (expected a run folder or a checkpoint)")
    if path.name == "checkpoints" and not (path / "checkpoints").is_dir():
        path = path.parent  # the run's checkpoints folder itself
    found = list_checkpoints(path)
    if not found:
        raise CheckpointError(f"{path} holds no checkpoint (looked in {checkpoints_dir(path)})")
    return found[-1]


def newer_checkpoints(checkpoint: Path, step: int) -> list[Path]:
    """The checkpoints of ``checkpoint``'s run that are newer than its ``step`` (a resume from
    ``checkpoint`` would fork the run: they belong to the branch it abandons)."""
    checkpoint = Path(checkpoint)
    if checkpoint.parent.name != "checkpoints":
        return []  # a checkpoint folder outside a run
    run_dir = checkpoint.parent.parent
    return [p for p in list_checkpoints(run_dir) if step_of(p) > step]


def check_newest(checkpoint: Path, discard_newer: bool) -> list[Path]:
    """The checkpoints newer than ``checkpoint``, which a resume from it abandons. Without
    ``discard_newer`` they are refused: resuming would fork the run, and a later ``--resume`` of
    the run folder would silently continue the abandoned branch."""
    checkpoint = Path(checkpoint)
    step = read_manifest(checkpoint)["step"]
    newer = newer_checkpoints(checkpoint, step)
    if newer and not discard_newer:
        run = checkpoint.parent.parent
        names = ", ".join(p.name for p in newer)
        raise CheckpointError(
            f"{checkpoint} is not the newest checkpoint of {run} ({names} "
            f"{'is' if len(newer) == 1 else 'are'} newer): resuming it would fork the run. "
            f"Resume the newest with --resume {run}, or add --discard-newer to delete the newer "
            f"checkpoints and the metrics after step {step}"
        )
    return newer


def discard_checkpoints(paths: list[Path]) -> None:
    """Remove checkpoints newest first: an interrupted discard leaves a shorter run, no hole."""
    for path in sorted(paths, key=step_of, reverse=True):
        shutil.rmtree(path)


# ---------------------------------------------------------------------------- writing


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def save_checkpoint(
    run_dir: Path,
    step: int,
    model_state: dict[str, Tensor],
    train_state: dict[str, Any],
    info: dict[str, Any],
    keep: int,
) -> Path:
    """Write the checkpoint of ``step`` atomically and keep only the newest ``keep``."""
    safetensors = import_safetensors()
    folder = checkpoints_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".tmp-*"):  # left by a process killed mid-write
        shutil.rmtree(stale, ignore_errors=True)
    final = folder / f"{PREFIX}{step:08d}"
    temporary = folder / f".tmp-{final.name}-{os.getpid()}"
    temporary.mkdir()
    weights = {name: t.detach().cpu().contiguous().clone() for name, t in model_state.items()}
    safetensors.save_file(weights, str(temporary / MODEL_FILE), metadata={"format": FORMAT})
    torch.save(train_state, temporary / STATE_FILE)
    files = {}
    for name in (MODEL_FILE, STATE_FILE):
        _fsync(temporary / name)
        files[name] = {
            "bytes": (temporary / name).stat().st_size,
            "sha256": _sha256(temporary / name),
        }
    manifest = {"format": FORMAT, "step": step, "saved_at": time.time(), "files": files, **info}
    (temporary / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    _fsync(temporary / MANIFEST_FILE)
    _fsync(temporary)
    if final.exists():  # the same step saved twice (e.g. interrupted right after a save)
        shutil.rmtree(final)
    os.replace(temporary, final)
    _fsync(folder)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


# ---------------------------------------------------------------------------- reading


def read_manifest(checkpoint: Path) -> dict[str, Any]:
    """The manifest of a checkpoint, checked for the format and the shape of every field the
    command line reads (a hand-edited or foreign ``manifest.json`` is reported, never a
    traceback)."""
    path = Path(checkpoint) / MANIFEST_FILE
    if not path.is_file():
        raise CheckpointError(f"{checkpoint} is not a complete checkpoint: {MANIFEST_FILE} missing")
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is corrupt or truncated: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CheckpointError(f"{path}: unknown checkpoint format {found!r}, expected {FORMAT!r}")
    problem = _manifest_problem(manifest)
    if problem:
        raise CheckpointError(f"{path} is not a valid manifest: {problem}")
    return manifest


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a manifest of the right format, or None."""
    step = manifest.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return f"'step' must be an integer >= 0, got {step!r}"
    files = manifest.get("files")
    if not isinstance(files, dict):
        return f"'files' must be an object naming {MODEL_FILE} and {STATE_FILE}, got {files!r}"
    for name in (MODEL_FILE, STATE_FILE):
        entry = files.get(name)
        if entry is None:
            return f"'files' does not list {name}"
        size = entry.get("bytes") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or not isinstance(digest, str):
            return f"'files' entry {name} needs an integer 'bytes' and a 'sha256', got {entry!r}"
    if not isinstance(manifest.get("config"), dict):
        config = manifest.get("config")
        return f"'config' must be an object of configuration sections, got {config!r}"
    for key in ("data", "runtime"):
        if key in manifest and not isinstance(manifest[key], dict):
            return f"{key!r} must be an object, got {manifest[key]!r}"
    return None


def verify_file(checkpoint: Path, manifest: dict[str, Any], name: str) -> Path:
    """Check that ``name`` has the size and SHA-256 the manifest recorded."""
    path = Path(checkpoint) / name
    expected = manifest["files"][name]  # read_manifest checked the shape
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    size = path.stat().st_size
    if size != expected["bytes"]:
        raise CheckpointError(
            f"{path} is truncated or corrupt: {size} bytes, the manifest says {expected['bytes']}"
        )
    if _sha256(path) != expected["sha256"]:
        raise CheckpointError(f"{path} is corrupt: its SHA-256 differs from the manifest's")
    return path


def load_model_state(checkpoint: Path, manifest: dict[str, Any]) -> dict[str, Tensor]:
    path = verify_file(checkpoint, manifest, MODEL_FILE)
    safetensors = import_safetensors()
    try:
        return safetensors.load_file(str(path), device="cpu")
    except Exception as error:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"{path} cannot be read as safetensors: {error}") from None


def load_train_state(checkpoint: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    path = verify_file(checkpoint, manifest, STATE_FILE)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise CheckpointError(f"{path} cannot be loaded safely (weights_only): {error}") from None


def check_fits(model: nn.Module, state: dict[str, Tensor], source: Path) -> None:
    """Refuse a state dict whose names or shapes differ from the model's, before any copy."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state.items()}
    missing, unexpected = sorted(expected.keys() - found), sorted(found.keys() - expected)
    wrong = [
        f"{n}: {found[n]} vs model {expected[n]}"
        for n in expected.keys() & found.keys()
        if found[n] != expected[n]
    ]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{source} does not fit the model built from its configuration: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}"
        )


def rng_state(device: torch.device) -> dict:
    """The global RNG states a checkpoint keeps (CPU, and the device's on CUDA)."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def checkpoint_info(config: dict, corpus, env) -> dict:
    """The manifest's description of a run: its config, its data and where it ran."""
    return {
        "config": config,
        "data": {"description": corpus.description, "fingerprint": corpus.fingerprint},
        "runtime": {
            "device": env.device.type,
            "processes": env.world_size,
            "threads": torch.get_num_threads(),
        },
    }
