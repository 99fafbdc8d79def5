"""Byte corpora: sources, the deterministic split, memory mapping, per-rank sampling."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
import torch

from x_transformers.cli.data import (
    TrainBatches,
    builtin_corpus,
    corpus_file,
    eval_windows,
    memory_map,
    open_corpus,
    spread,
    stdlib_sources,
)
from x_transformers.cli.errors import DataError


def test_split_is_the_deterministic_tail(text_file):
    first = open_corpus(str(text_file), 0.1, 33)
    again = open_corpus(str(text_file), 0.1, 33)
    data = text_file.read_bytes()
    num_val = int(len(data) * 0.1)
    assert bytes(first.train.tolist()) == data[: len(data) - num_val]
    assert bytes(first.val.tolist()) == data[len(data) - num_val :]
    assert torch.equal(first.val, again.val) and first.fingerprint == again.fingerprint


def test_gz_and_folder_sources_equal_the_plain_bytes(tmp_path):
    parts = [b"first file\n", b"second file\n"]
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(parts[0])
    (folder / "sub" / "b.txt").write_bytes(parts[1])
    (folder / "image.bin").write_bytes(b"\x89PNG\0\0\0binary")  # skipped: not text
    (folder / ".hidden.txt").write_bytes(b"skipped")
    gz = tmp_path / "corpus.txt.gz"
    gz.write_bytes(gzip.compress(b"".join(parts)))
    for source in (gz, folder):
        path, _ = corpus_file(str(source))
        assert path.read_bytes() == b"".join(parts)
        assert Path(os.environ["XTRANSFORMERS_CACHE"]) in path.parents
        assert corpus_file(str(source))[0] == path  # cached, not rebuilt under a new name


def test_a_bad_gz_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="broken.gz"):
        corpus_file(str(path))


def test_builtin_corpus_is_the_standard_library_source():
    sources = stdlib_sources()
    assert any(p.name == "os.py" for p in sources)
    path = builtin_corpus()
    assert builtin_corpus() == path
    head = path.read_bytes()[:4096].decode()
    assert head.startswith("# ---- ") and sources[0].read_text()[:50] in head


def test_missing_or_tiny_data_is_reported(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_corpus(str(tmp_path / "nope.txt"), 0.1, 33)
    small = tmp_path / "small.txt"
    small.write_text("x" * 100)
    with pytest.raises(DataError, match=r"train=90 and val=10.*>= 33 bytes"):
        open_corpus(str(small), 0.1, 33)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_a_large_corpus_is_memory_mapped_not_read(tmp_path):
    path = tmp_path / "large.bin"
    with open(path, "wb") as handle:  # a sparse 512 MiB file
        handle.truncate(512 << 20)

    def resident_mib():
        return (
            int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
        )

    before = resident_mib()
    tokens = memory_map(path)
    batches = TrainBatches(tokens, 64, 4, seed=0)
    batches.batch(0, 0)
    assert len(tokens) == 512 << 20
    assert resident_mib() - before < 64


def test_batches_are_a_function_of_step_and_shard_by_rank():
    positions = torch.arange(1000)  # the token value is its position in the corpus
    ranks = [TrainBatches(positions, 9, 16, seed=3, rank=r, world_size=2) for r in range(2)]
    assert torch.equal(ranks[0].batch(5, 1), ranks[0].batch(5, 1))
    assert not torch.equal(ranks[0].batch(5, 1), ranks[0].batch(6, 1))
    assert not torch.equal(ranks[0].batch(5, 0), ranks[0].batch(5, 1))
    assert ranks[0].batch(7, 0).max() < 500 <= ranks[1].batch(7, 0).min()
    windows = ranks[1].batch(7, 0)
    assert windows.shape == (16, 10)
    assert torch.equal(windows - windows[:, :1], torch.arange(10).expand(16, 10))


def test_eval_windows_predict_every_byte_once():
    for total, seq_len in ((100, 10), (101, 10), (5, 10), (2, 1)):
        predicted = []
        for start, length in eval_windows(total, seq_len):
            assert 2 <= length <= seq_len + 1
            predicted += range(start + 1, start + length)
        assert predicted == list(range(1, total))


def test_spread_picks_evenly():
    assert spread(list(range(10)), 3) == [0, 4, 9]  # round(4.5) -> 4 (round half to even)
    assert spread([1, 2], 5) == [1, 2]
