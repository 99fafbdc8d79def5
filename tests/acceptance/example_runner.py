"""Run one extracted usage example as written (shared by the seed and the bundled-sample tests).

* in a fresh namespace pre-populated with ``torch`` and every public name of ``x_transformers``
  (``x_transformers.__all__``), after ``torch.manual_seed(0)``;
* ``.cuda()`` is a no-op when CUDA is not available (``torch.nn.Module.cuda`` and
  ``torch.Tensor.cuda`` are monkeypatched to return ``self``);
* the GPT-3 sized example (detected by content: a ``Decoder`` with dim 12288, depth 96, heads 96)
  is built under ``with torch.device("meta"):`` and must have about 175B parameters (between
  170e9 and 180e9).

Expected failures: an example that raises ``NotImplementedError`` is an ``xfail`` only when the
error message names, in single quotes, a keyword contained in
``x_transformers.options.not_implemented_keywords()``. Any other exception -- or a
``NotImplementedError`` naming no such keyword -- fails the test, so the expected-failure list
shrinks automatically as features land and an implemented feature can never hide behind an xfail.
"""

from __future__ import annotations

import gc
import linecache
import re

import pytest
import torch

try:
    from tests.acceptance import seed_examples as se
except ImportError:  # tests/ not importable as a package: rootdir-relative import
    import seed_examples as se

GPT3_MIN_PARAMS = 170e9
GPT3_MAX_PARAMS = 180e9

_QUOTED_RE = re.compile(r"'([^'\s]+)'")


def _namespace() -> dict:
    import x_transformers

    ns = {"__name__": "__seed_example__", "torch": torch}
    ns.update({name: getattr(x_transformers, name) for name in x_transformers.__all__})
    return ns


def _compile(example: se.Example):
    """Compile the example under a pseudo file name whose source is registered
    in linecache, so tracebacks show the example's own lines."""
    filename = f"<seed example {example.id} ({example.seed}:{example.lineno})>"
    source = example.code + "\n"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return compile(source, filename, "exec")


def _identity(self, *args, **kwargs):
    return self


def _xfail_if_not_implemented(err: NotImplementedError) -> None:
    """xfail when the message names a keyword the library declares unimplemented."""
    from x_transformers.options import not_implemented_keywords

    named = set(_QUOTED_RE.findall(str(err)))
    declared = named & set(not_implemented_keywords())
    if declared:
        pytest.xfail(f"not implemented yet: {', '.join(sorted(declared))} ({err})")


def _parameter_count(ns: dict) -> int:
    modules = [v for v in ns.values() if isinstance(v, torch.nn.Module)]
    assert modules, "the GPT-3 example defined no module"
    return max(sum(p.numel() for p in m.parameters()) for m in modules)


def run_example(example: se.Example, monkeypatch: pytest.MonkeyPatch) -> None:
    """Execute ``example``; raises (or xfails) as described in the module docstring."""
    gpt3 = se.is_gpt3(example.code)
    if gpt3 or not torch.cuda.is_available():
        # the GPT-3 example lives on the meta device, where .cuda() cannot work
        monkeypatch.setattr(torch.nn.Module, "cuda", _identity)
        monkeypatch.setattr(torch.Tensor, "cuda", _identity)

    code = _compile(example)
    ns = _namespace()
    torch.manual_seed(0)
    try:
        try:
            if gpt3:
                with torch.device("meta"):
                    exec(code, ns)
            else:
                exec(code, ns)
        except NotImplementedError as err:
            _xfail_if_not_implemented(err)
            raise
        if gpt3:
            count = _parameter_count(ns)
            assert GPT3_MIN_PARAMS <= count <= GPT3_MAX_PARAMS, (
                f"GPT-3 example has {count:,} parameters, expected about 175B"
            )
    finally:
        ns.clear()
        del ns
        gc.collect()
