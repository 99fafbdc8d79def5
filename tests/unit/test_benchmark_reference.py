"""The benchmark references (benchmarks/reference.py) stay the same model as ours: for every
feature set the parameter counts are equal and, with our weights copied in, the logits are
identical; and the one-command suite runs end to end at a tiny shape (issue 12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def reference():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import common
        import reference

        yield reference, common
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize("features", ["off", "rotary", "modern"])
def test_reference_is_our_model(reference, features):
    reference, common = reference
    shape = dict(num_tokens=64, max_seq_len=32, dim=64, depth=2, heads=2)
    torch.manual_seed(0)
    ours = common.build_ours(features, **shape).eval()
    ref = reference.ReferenceGPT(**shape, **reference.FEATURE_SETS[features]).eval()
    expected = reference.expected_num_params(**shape, **reference.FEATURE_SETS[features])
    assert sum(p.numel() for p in ours.parameters()) == expected
    assert sum(p.numel() for p in ref.parameters()) == expected
    common.copy_weights(ours, ref)
    x = torch.randint(0, 64, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ref(x), ours(x), rtol=1e-5, atol=1e-5)
        # and the reference's cached decoding is its own full forward
        cached = ref.generate(x[:, :4], 12, cache_kv=True)
        assert torch.equal(cached, ref.generate(x[:, :4], 12, cache_kv=False))


def test_copy_weights_refuses_a_different_model(reference):
    reference, common = reference
    shape = dict(num_tokens=64, max_seq_len=32, dim=64, depth=2, heads=2)
    ours = common.build_ours("modern", **shape)
    with pytest.raises(ValueError, match="differ"):
        common.copy_weights(ours, reference.ReferenceGPT(**shape))


@pytest.mark.slow  # a subprocess that compiles a decode step: 10-60 s on 2 cores
def test_suite_runs_end_to_end():
    command = [
        sys.executable, str(BENCHMARKS / "suite.py"), "--threads", "1", "--dim", "32",
        "--depth", "1", "--heads", "2", "--seq-len", "16", "--train-repeats", "1",
        "--gen-repeats", "1", "--warmup", "1", "--new-tokens", "4", "--no-memory", "--no-hf",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "## summary (markdown)" in result.stdout
    assert "| features modern |" in result.stdout and "| ours, compile=True |" in result.stdout
