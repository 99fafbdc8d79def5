"""Acceptance test: every Python usage example of the seed READMEs must run.

The product spec is the set of README documents in the seeds directory
(``$XT_SEEDS_DIR`` if set, else ``<repo root>/../shared/seeds``; the whole
module is skipped when it does not exist -- the library itself never reads
it, and ``test_bundled_sample`` keeps the acceptance step meaningful on a
fresh clone).  :mod:`seed_examples` extracts every Python example from them
(fenced markdown, scraped pages with and without indentation, and the
PaddlePaddle port translated to torch), resolves fragments, de-duplicates and
applies the documented exclusion list.  :func:`example_runner.run_example`
executes each example *as written*, at full size (dim 512, depth 6-12,
sequence length 1024, a few ``.backward()`` calls), so the run takes minutes
on a CPU; the GPT-3 sized example is built on the meta device.

All tests carry the ``acceptance`` marker: the normal suite deselects them
(``-m "not acceptance"``); run them with
``python -m pytest tests/acceptance -m acceptance``.
"""

from __future__ import annotations

import pytest

try:
    from tests.acceptance import seed_examples as se
    from tests.acceptance.example_runner import run_example
except ImportError:  # tests/ not importable as a package: rootdir-relative import
    import seed_examples as se
    from example_runner import run_example

SEEDS_DIR = se.seeds_dir()
if not SEEDS_DIR.is_dir():
    pytest.skip(f"seed documents not found at {SEEDS_DIR}", allow_module_level=True)

EXAMPLES = se.load_examples(SEEDS_DIR)


@pytest.mark.acceptance
@pytest.mark.parametrize("example", EXAMPLES, ids=[ex.id for ex in EXAMPLES])
def test_seed_example(example: se.Example, monkeypatch: pytest.MonkeyPatch) -> None:
    run_example(example, monkeypatch)
