"""The length-extrapolation evaluation: per-position bits per byte against independent
computations, every multiple scoring the same bytes, and a tiny extrapolation suite end to end."""

from __future__ import annotations

import json
import math

import torch
from torch import nn

from tests.cli.conftest import TINY_CONFIG
from x_transformers import AutoregressiveWrapper, Decoder, TransformerWrapper
from x_transformers.cli.ablation.command import REPORT_FILE, RESULTS_FILE
from x_transformers.cli.ablation.extrapolation import (
    evaluate_extrapolation,
    window_bits,
    window_starts,
)
from x_transformers.cli.ablation.plots import EXTRAPOLATION_FILE


def tokens(count=3000, seed=0):
    return torch.randint(0, 256, (count,), generator=torch.Generator().manual_seed(seed))


class Bigram(nn.Module):
    """Logits that depend on the current byte only: its losses ignore all earlier context."""

    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(256, 256)

    def forward(self, x):
        return self.table(x)


def test_window_bits_average_to_the_wrappers_loss():
    torch.manual_seed(0)
    net = TransformerWrapper(
        num_tokens=256, max_seq_len=64, attn_layers=Decoder(dim=16, depth=1, heads=2)
    )
    data = tokens()
    starts = window_starts(len(data), 16, 5)
    bits = window_bits(net, data, starts, 16, batch_size=2, device="cpu")
    assert bits.shape == (5, 16)
    model = AutoregressiveWrapper(net).eval()
    with torch.no_grad():
        batch = torch.stack([data[s : s + 17] for s in starts]).long()
        expected = float(model(batch)) / math.log(2)
    assert math.isclose(float(bits.mean()), expected, rel_tol=1e-5)


def test_every_multiple_scores_the_same_bytes_at_the_same_positions():
    """With a context-free model the loss of a byte does not depend on its window, so the
    per-position losses agree across multiples exactly when they line up byte for byte."""
    torch.manual_seed(0)
    report = evaluate_extrapolation(Bigram(), tokens(), 8, (1, 2, 4), 6, "cpu", batch_size=4)
    assert report["multiples"] == [1, 2, 4] and report["seq_len"] == 8
    positions = [torch.tensor(report["positions"][m]) for m in ("1", "2", "4")]
    assert [len(p) for p in positions] == [32, 32, 32]
    assert torch.allclose(positions[0], positions[2], atol=1e-5)
    assert torch.allclose(positions[1], positions[2], atol=1e-5)
    assert positions[0].std() > 0.1  # the bytes differ, so a misalignment would show
    means = [report["bpb"][m] for m in ("1", "2", "4")]
    assert max(means) - min(means) < 1e-6


def test_the_first_training_length_has_the_same_context_at_every_multiple():
    torch.manual_seed(0)
    net = TransformerWrapper(
        num_tokens=256, max_seq_len=32, attn_layers=Decoder(dim=16, depth=1, heads=2)
    )
    report = evaluate_extrapolation(net, tokens(), 8, (1, 4), 3, "cpu")
    one, four = (torch.tensor(report["positions"][m]) for m in ("1", "4"))
    assert torch.allclose(one[:8], four[:8], atol=1e-5)
    assert not torch.allclose(one[8:], four[8:], atol=1e-3)  # more context changes the rest


def test_window_starts_are_full_windows_spread_over_the_split():
    starts = window_starts(1000, 100, 3)
    assert starts == [0, 400, 800]
    assert all(s + 101 <= 1000 for s in window_starts(1000, 100, 50))


EXTRAPOLATION_SUITE = (
    "[suite]\nseeds = 1\nevaluations = 1\nextrapolation = [1, 2]\nextrapolation_windows = 4\n"
    + TINY_CONFIG.replace("max_seq_len = 32", "max_seq_len = 32\nuse_abs_pos_emb = false")
    .replace("steps = 40", "steps = 4\nseq_len = 16")
    .replace("eval_every = 20\n", "")
    + "[variants.alibi]\nattn_layers.alibi_pos_bias = true\n"
)


def test_an_extrapolation_suite_end_to_end(cli, text_file, tmp_path):
    suite = tmp_path / "extra.toml"
    suite.write_text(EXTRAPOLATION_SUITE)
    out = tmp_path / "out"
    code, stdout, stderr = cli("ablate", "--suite", suite, "--data", text_file, "--out", out)
    assert code == 0, stderr
    results = json.loads((out / RESULTS_FILE).read_text())
    assert [r["variant"] for r in results] == ["base", "alibi"]
    for result in results:
        extrapolation = result["extrapolation"]
        assert extrapolation["seq_len"] == 16 and extrapolation["multiples"] == [1, 2]
        assert [len(extrapolation["positions"][m]) for m in ("1", "2")] == [32, 32]
    report = (out / REPORT_FILE).read_text()
    assert "## Length extrapolation" in report and "| alibi |" in report
    assert "| variant | 1× (16) | 2× (32) | 2× − 1× |" in report
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (out / EXTRAPOLATION_FILE).read_bytes()[:4] == b"\x89PNG"
