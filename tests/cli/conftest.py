"""Shared fixtures of the command-line tests: a tiny text, a tiny config, an isolated cache."""

from __future__ import annotations

import math
import os
import random
from collections import Counter
from pathlib import Path

import pytest
import torch

from x_transformers.cli.main import main

WORDS = "the a cat dog sat ran on under mat log big small red blue and then".split()

TINY_CONFIG = """
[wrapper]
num_tokens = 256
max_seq_len = 32

[attn_layers]
type = "Decoder"
dim = 32
depth = 1
heads = 2

[autoregressive]

[train]
steps = 40
batch_size = 8
lr = 3e-3
warmup_steps = 5
eval_every = 20
eval_batches = 2
checkpoint_every = 20
log_every = 10
sample_length = 16

[data]
val_fraction = 0.1
"""


ROOT = Path(__file__).resolve().parents[2]


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """Environment of a CLI child process: this checkout importable, one thread, its own cache."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "XTRANSFORMERS_CACHE": str(tmp_path / "cache"),
    }


def make_text(num_lines: int = 1500, seed: int = 0) -> str:
    """A small, very regular English-like text: a model learns it within a few dozen steps."""
    rng = random.Random(seed)
    lines = []
    for _ in range(num_lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 7))]
        lines.append(" ".join(words).capitalize() + ".")
    return "\n".join(lines) + "\n"


def unigram_bits(data: bytes) -> float:
    """Entropy of the byte distribution: the loss of the best context-free model."""
    counts = Counter(data)
    total = len(data)
    return -sum(c / total * math.log2(c / total) for c in counts.values())


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Corpus caches go to a temporary folder; one torch thread keeps tiny models fast and
    deterministic on a busy machine."""
    monkeypatch.setenv("XTRANSFORMERS_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tiny.txt"
    path.write_text(make_text())
    return path


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture
def cli(capsys):
    """Run ``xtransformers ARGS`` in this process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, text_file) -> Path:
    """A run of the tiny config trained for 40 steps (shared; copy it before changing it)."""
    folder = tmp_path_factory.mktemp("trained")
    config = folder / "tiny.toml"
    config.write_text(TINY_CONFIG)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(
            [
                "train",
                "--config",
                str(config),
                "--data",
                str(text_file),
                "--out",
                str(folder / "run"),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return folder / "run"
