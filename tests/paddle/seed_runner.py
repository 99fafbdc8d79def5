"""Run the PaddlePaddle README's examples (seed 003) as written, under pd_x_transformers.

The examples are extracted by :mod:`tests.acceptance.seed_examples` (fences, fragments,
de-duplication, exclusions) with its paddle -> torch translation switched off, and executed in a
namespace holding ``paddle`` and every public name of ``pd_x_transformers`` after
``paddle.seed(0)``. The GPT-3 sized example is built under ``paddle.LazyGuard()`` (parameters
get shapes but no memory: Paddle has no meta device) and must have about 175B parameters.
Expected failures follow the torch runner: a ``NotImplementedError`` naming a keyword the
library declares unimplemented is an xfail, anything else fails.
"""

from __future__ import annotations

import gc
import linecache
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import paddle

import pd_x_transformers
from tests.acceptance import seed_examples as se
from tests.acceptance.example_runner import (
    GPT3_MAX_PARAMS,
    GPT3_MIN_PARAMS,
    _xfail_if_not_implemented,
)

PADDLE_SEED_PREFIX = "003_"


def paddle_seed_path() -> Path | None:
    found = sorted(se.seeds_dir().glob(f"{PADDLE_SEED_PREFIX}*.txt"))
    return found[0] if found else None


def load_paddle_examples() -> list[se.Example]:
    """The examples of the Paddle README, untranslated."""
    path = paddle_seed_path()
    if path is None:
        return []
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(path, Path(folder) / path.name)
        with mock.patch.object(se, "translate_paddle", lambda code: code):
            return se.load_examples(folder)


def _namespace() -> dict:
    ns = {"__name__": "__paddle_seed_example__", "paddle": paddle}
    ns.update({name: getattr(pd_x_transformers, name) for name in pd_x_transformers.__all__})
    return ns


def _compile(example: se.Example):
    filename = f"<paddle seed example {example.id} ({example.seed}:{example.lineno})>"
    source = example.code + "\n"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return compile(source, filename, "exec")


def _parameter_count(ns: dict) -> int:
    layers = [v for v in ns.values() if isinstance(v, paddle.nn.Layer)]
    assert layers, "the GPT-3 example defined no layer"
    return max(sum(int(np.prod(p.shape)) for p in layer.parameters()) for layer in layers)


def run_paddle_example(example: se.Example) -> None:
    gpt3 = se.is_gpt3(example.code)
    assert "paddle" in example.code or "pd_x_transformers" in example.code or gpt3, example.code
    code = _compile(example)
    ns = _namespace()
    paddle.seed(0)
    try:
        try:
            if gpt3:
                with paddle.LazyGuard():
                    exec(code, ns)
            else:
                exec(code, ns)
        except NotImplementedError as err:
            _xfail_if_not_implemented(err)
            raise
        if gpt3:
            count = _parameter_count(ns)
            assert GPT3_MIN_PARAMS <= count <= GPT3_MAX_PARAMS, count
    finally:
        ns.clear()
        del ns
        gc.collect()
