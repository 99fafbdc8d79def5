"""Acceptance test that needs no seeds: the bundled sample seeds (``sample_seeds/``, one fenced
markdown page and one flat scraped page) go through the same extraction and execution as the
seed READMEs. It always runs, so the acceptance step of the README's test command exercises the
pipeline (and selects at least one test) on a fresh clone without ``../shared``; CI, which has
the seeds, runs both."""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    from tests.acceptance import seed_examples as se
    from tests.acceptance.example_runner import run_example
except ImportError:  # tests/ not importable as a package: rootdir-relative import
    import seed_examples as se
    from example_runner import run_example

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_seeds"
EXAMPLES = se.load_examples(SAMPLE_DIR)


@pytest.mark.acceptance
def test_the_sample_yields_the_expected_examples():
    """Fences only (bash and bibtex ignored), the fragment gets its definition, the paddle block
    is translated, and the flat page's copy of the first example is de-duplicated."""
    assert [ex.id for ex in EXAMPLES] == [
        "000-01-decoder-only-gpt-like+001-01",
        "000-02-then-the-same-model-with",
        "000-03-the-paddlepaddle-edition-of-the",
        "001-02-training-and-sampling-with-the",
    ]
    fragment, paddle, flat = EXAMPLES[1].code, EXAMPLES[2].code, EXAMPLES[3].code
    assert fragment.startswith("import torch") and fragment.endswith("(1, 64, 256)")
    assert "paddle" not in paddle and "torch.ones_like(tokens).bool()" in paddle
    assert "model = TransformerWrapper(" in flat and "Vaswani" not in flat


@pytest.mark.acceptance
@pytest.mark.parametrize("example", EXAMPLES, ids=[ex.id for ex in EXAMPLES])
def test_sample_example(example: se.Example, monkeypatch: pytest.MonkeyPatch) -> None:
    run_example(example, monkeypatch)
