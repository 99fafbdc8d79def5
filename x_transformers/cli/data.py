"""Byte-level corpora: one memory-mapped file of bytes, split deterministically, sampled per rank.

Every source becomes a single plain file whose bytes are the tokens (vocabulary 256):

- a text file is used as it is;
- a ``.gz`` (``enwik8.gz`` works) or a folder is decompressed / concatenated once into a cache file;
- no ``--data`` gives the built-in corpus: the Python standard library's own ``.py`` sources,
  gathered at run time (no download; present wherever Python is) and cached.

The file is memory-mapped (``torch.from_file``), so a 1 GB corpus is never read into RAM: only
the pages of the sampled windows are touched. The last ``val_fraction`` of the bytes is the
validation split. Training windows are drawn from rank-private shards of the training split by a
generator seeded from (seed, rank, step, micro-batch), so a resumed run draws the same batches.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import sys
import sysconfig
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import torch
from torch import Tensor

from .errors import DataError

CACHE_ENV = "XTRANSFORMERS_CACHE"
BUILTIN = "builtin:python-stdlib"
SKIPPED_DIRS = {"site-packages", "dist-packages", "__pycache__"}
CHUNK = 1 << 20
BYTE_VOCAB_SIZE = 256


def cache_dir() -> Path:
    """``$XTRANSFORMERS_CACHE``, else ``$XDG_CACHE_HOME/x_transformers``, else
    ``~/.cache/x_transformers``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "x_transformers"


def _write_atomically(dest: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``dest`` through a temporary file and a rename, so a reader never sees half a file
    (two processes building the same cache both produce the same bytes)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    temporary = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, dest)
    finally:
        temporary.unlink(missing_ok=True)
    return dest


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- sources


def stdlib_sources() -> list[Path]:
    """The standard library's ``.py`` files in a fixed order (installed packages excluded)."""
    root = Path(sysconfig.get_path("stdlib"))
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        files += [Path(folder) / n for n in sorted(names) if n.endswith(".py")]
    return files


def builtin_corpus() -> Path:
    """The built-in corpus file, gathered from the standard library on first use."""
    root = Path(sysconfig.get_path("stdlib"))
    version = "{}.{}.{}".format(*sys.version_info[:3])
    dest = cache_dir() / f"stdlib-{version}-{_digest([str(root)])}.txt"
    if dest.is_file():
        return dest

    def write(out: BinaryIO) -> None:
        for path in stdlib_sources():
            out.write(f"# ---- {path.relative_to(root).as_posix()} ----\n".encode())
            out.write(path.read_bytes().rstrip(b"\n") + b"\n\n")

    if not stdlib_sources():
        raise DataError(f"no .py files under the standard library folder {root}")
    return _write_atomically(dest, write)


def _copy_source(path: Path, out: BinaryIO) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as source:
            shutil.copyfileobj(source, out, CHUNK)
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read {path}: {error}") from error


def _concatenate(files: list[Path], out: BinaryIO) -> None:
    for path in files:
        _copy_source(path, out)


def _is_text(path: Path) -> bool:
    if path.suffix == ".gz":
        return True
    with open(path, "rb") as handle:
        return b"\0" not in handle.read(8192)


def folder_files(root: Path) -> list[Path]:
    """The non-hidden text (or ``.gz``) files of a folder, recursively, in path order."""
    files = []
    for path in sorted(root.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
        if path.is_file() and not hidden and _is_text(path):
            files.append(path)
    return files


def corpus_file(path: str) -> tuple[Path, str]:
    """A plain file of bytes for ``path`` ('' = the built-in corpus) and a description of it."""
    if not path:
        return builtin_corpus(), f"{BUILTIN} (Python {sys.version.split()[0]} sources)"
    source = Path(path).expanduser()
    if not source.exists():
        raise DataError(f"--data {path!r} does not exist")
    if source.is_dir():
        files = folder_files(source)
        if not files:
            raise DataError(f"--data {path!r}: the folder holds no text files")
        stamp = [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
        dest = cache_dir() / f"folder-{source.name}-{_digest(stamp)}.txt"
        if not dest.is_file():
            _write_atomically(dest, lambda out: _concatenate(files, out))
        return dest, f"{path} ({len(files)} files)"
    if source.suffix == ".gz":
        stat = source.stat()
        stamp = [str(source.resolve()), str(stat.st_size), str(stat.st_mtime_ns)]
        dest = cache_dir() / f"gunzip-{source.stem}-{_digest(stamp)}"
        if not dest.is_file():
            _write_atomically(dest, lambda out: _copy_source(source, out))
        return dest, f"{path} (decompressed)"
    return source, path


# ---------------------------------------------------------------------------- tokens


def memory_map(path: Path) -> Tensor:
    """The bytes of ``path`` as a read-only-by-convention uint8 tensor backed by the file."""
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path} is empty")
    # shared=False maps the file copy-on-write: pages are read lazily and never written back
    return torch.from_file(str(path), shared=False, size=size, dtype=torch.uint8)


def fingerprint(path: Path) -> str:
    """A cheap identity of a corpus (size + first and last MiB), to check a resume's data."""
    size = path.stat().st_size
    digest = hashlib.sha256(struct.pack("<Q", size))
    with open(path, "rb") as handle:
        digest.update(handle.read(CHUNK))
        handle.seek(max(0, size - CHUNK))
        digest.update(handle.read(CHUNK))
    return digest.hexdigest()[:32]


@dataclass
class Corpus:
    """A memory-mapped corpus and its deterministic train / validation split."""

    path: Path
    description: str
    tokens: Tensor  # (total,) uint8, file-backed
    train: Tensor  # view of the first part
    val: Tensor  # view of the last val_fraction

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.path)


def open_corpus(path: str, val_fraction: float, window: int) -> Corpus:
    """Open and split a corpus; both splits must hold at least one ``window`` of bytes."""
    file, description = corpus_file(path)
    tokens = memory_map(file)
    num_val = int(len(tokens) * val_fraction)
    train, val = tokens[: len(tokens) - num_val], tokens[len(tokens) - num_val :]
    if min(len(train), len(val)) < window:
        raise DataError(
            f"{description}: {len(tokens)} bytes split into train={len(train)} and "
            f"val={len(val)} (val_fraction={val_fraction}); each needs >= {window} bytes "
            "(seq_len + 1)"
        )
    return Corpus(file, description, tokens, train, val)


def _seed_of(*numbers: int) -> int:
    digest = hashlib.sha256(struct.pack(f"<{len(numbers)}q", *numbers)).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class TrainBatches:
    """Random training windows of ``seq_len + 1`` bytes from this rank's shard of the split.

    The shard of rank r is the r-th of ``world_size`` equal contiguous parts; batches are a pure
    function of (seed, rank, step, micro), so nothing about the data order needs saving."""

    def __init__(
        self,
        tokens: Tensor,
        seq_len: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        shard = len(tokens) // world_size
        self.tokens = tokens[rank * shard : (rank + 1) * shard]
        self.window, self.batch_size = seq_len + 1, batch_size
        self.seed, self.rank = seed, rank
        if len(self.tokens) < self.window:
            raise DataError(
                f"the training split ({len(tokens)} bytes over {world_size} ranks = {shard} each) "
                f"is shorter than one window of {self.window} bytes"
            )

    def batch(self, step: int, micro: int) -> Tensor:
        generator = torch.Generator().manual_seed(_seed_of(self.seed, self.rank, step, micro))
        starts = torch.randint(
            0, len(self.tokens) - self.window + 1, (self.batch_size,), generator=generator
        )
        index = starts[:, None] + torch.arange(self.window)  # (b, window)
        return self.tokens[index].long()


def eval_windows(num_tokens: int, seq_len: int) -> list[tuple[int, int]]:
    """(start, length) windows with stride ``seq_len`` and length up to ``seq_len + 1``: each byte
    after the first is predicted exactly once."""
    return [
        (start, min(seq_len + 1, num_tokens - start)) for start in range(0, num_tokens - 1, seq_len)
    ]


def spread(windows: list, count: int) -> list:
    """``count`` of ``windows`` evenly spaced over them (all when there are fewer)."""
    if count >= len(windows):
        return list(windows)
    positions = torch.linspace(0, len(windows) - 1, count).round().long().unique()
    return [windows[i] for i in positions.tolist()]
