"""The feature matrix: one table of feature cases that the property tests run over.

Each feature family keeps its rows in its own module under ``tests/matrix/`` (a list named
``CASES``); this module gathers them all, so a new feature gets every property check by adding a
row. Tags:

- ``encoder`` / ``decoder``: which stacks the case applies to (default both);
- ``no_cache``: the feature cannot use the KV cache (generation recomputes); such a feature
  also needs past inputs that Transformer-XL memories do not carry, so the XL test skips it too;
- ``no_xl``: a two-segment Transformer-XL pass differs from one long pass by design (e.g.
  memory tokens, which sit in front of every segment);
- ``not_token_logits``: the model's output is not logits over its vocabulary (embeddings, a
  narrower head), so token generation and the combined cache model leave it out;
- ``stochastic``: outputs are random in training mode (tests run in eval mode anyway);
- ``unused_params``: some parameters legitimately get no gradient (listed in ``unused``).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from x_transformers import Decoder, Encoder, TransformerWrapper

NUM_TOKENS, MAX_SEQ_LEN, DIM, DEPTH, HEADS, DIM_HEAD = 29, 16, 32, 2, 4, 8


@dataclass(frozen=True)
class FeatureCase:
    id: str
    layer_kwargs: dict = field(default_factory=dict)
    wrapper_kwargs: dict = field(default_factory=dict)
    tags: frozenset = frozenset({"encoder", "decoder"})
    unused: tuple[str, ...] = ()  # parameter-name fragments allowed to get no gradient

    def applies_to(self, kind: str) -> bool:
        return kind in self.tags


def case(id: str, tags=("encoder", "decoder"), wrapper_kwargs=None, unused=(), **layer_kwargs):
    """Shorthand used by the matrix modules."""
    return FeatureCase(id, layer_kwargs, dict(wrapper_kwargs or {}), frozenset(tags), unused)


def _collect() -> list[FeatureCase]:
    cases: list[FeatureCase] = []
    package = Path(__file__).parent / "matrix"
    for info in sorted(pkgutil.iter_modules([str(package)]), key=lambda m: m.name):
        module = importlib.import_module(f"tests.matrix.{info.name}")
        cases += module.CASES
    ids = [c.id for c in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"duplicate feature case ids: {sorted(duplicates)}")
    return cases


CASES: list[FeatureCase] = _collect()


def cases_for(kind: str, tag: str | None = None) -> list:
    import pytest

    return [
        pytest.param(c, id=c.id)
        for c in CASES
        if c.applies_to(kind) and (tag is None or tag in c.tags)
    ]


def case_kind_pairs(tag: str | None = None) -> list:
    """(case, kind) for every stack kind each case applies to."""
    import pytest

    return [
        pytest.param(c, kind, id=f"{c.id}-{kind}")
        for c in CASES
        for kind in ("encoder", "decoder")
        if c.applies_to(kind) and (tag is None or tag in c.tags)
    ]


def build_model(case: FeatureCase, kind: str, dtype=torch.float64, **extra_layer_kwargs):
    """A tiny token model for ``case``; ``kind`` is 'encoder' or 'decoder'."""
    torch.manual_seed(0)
    stack = Encoder if kind == "encoder" else Decoder
    layer_kwargs = {"attn_dim_head": DIM_HEAD, **case.layer_kwargs, **extra_layer_kwargs}
    model = TransformerWrapper(
        num_tokens=NUM_TOKENS,
        max_seq_len=MAX_SEQ_LEN,
        attn_layers=stack(dim=DIM, depth=DEPTH, heads=HEADS, **layer_kwargs),
        **case.wrapper_kwargs,
    )
    if model.attn_layers.dim_condition is not None:
        give_fixed_condition(model)
    return model.to(dtype).eval()


def fixed_condition(model, batch: int, seed: int = 7) -> dict:
    """``{'condition': ...}``, one fixed vector for every row, for a model whose stack reads a
    condition (``use_adaptive_*``); ``{}`` otherwise."""
    width = model.attn_layers.dim_condition
    if width is None:
        return {}
    vector = torch.randn(width, generator=torch.Generator().manual_seed(seed))
    return {"condition": vector.to(next(model.parameters()).dtype).expand(batch, -1)}


def give_fixed_condition(model) -> None:
    """Conditioned rows: every call that passes no ``condition=`` gets :func:`fixed_condition`
    (a forward pre-hook), so the property tests, generation and the cache run unchanged; a
    model loaded from a checkpoint has no hook (pass ``**fixed_condition(model, batch)``);
    tests/properties/test_conditioned_rows.py varies the condition per row."""

    def add_condition(module, args, kwargs):
        if kwargs.get("condition") is None:
            x = args[0] if args else kwargs["x"]
            kwargs.update(fixed_condition(module, x.shape[0]))
        return args, kwargs

    model.register_forward_pre_hook(add_condition, with_kwargs=True)
