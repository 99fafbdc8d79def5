"""Acceptance under Paddle: every example of the PaddlePaddle README (seed 003) runs as written,
with ``import paddle`` and ``from pd_x_transformers import ...``, at the seed's sizes (issue 16).
See :mod:`tests.paddle.seed_runner`. Skipped without paddle or without the seed documents."""

from __future__ import annotations

import pytest

pytest.importorskip("paddle")

from tests.paddle.seed_runner import (  # noqa: E402
    load_paddle_examples,
    paddle_seed_path,
    run_paddle_example,
)

if paddle_seed_path() is None:
    pytest.skip("the seed documents (seed 003) are not available", allow_module_level=True)

EXAMPLES = load_paddle_examples()


@pytest.mark.paddle
def test_every_block_of_the_paddle_readme_is_an_example():
    """The extractor finds the README's examples (39 python fences, none lost)."""
    assert len(EXAMPLES) >= 39
    assert all("torch" not in example.code for example in EXAMPLES)


@pytest.mark.paddle
@pytest.mark.acceptance
@pytest.mark.parametrize("example", EXAMPLES, ids=[example.id for example in EXAMPLES])
def test_paddle_seed_example(example):
    run_paddle_example(example)
