"""Seeded random combinations of the feature matrix (issue 13, "make the suite find these itself").

The rows of the matrix are each checked alone (``test_properties.py``, ``test_cache.py``); bugs
that need two features at once hide there. An explicit seeded sampler draws 2-4 rows at a time,
merges their keywords into one model and checks either that the model refuses the combination
with a ``ValueError`` / ``TypeError`` naming one of its keywords, or that it satisfies

- finite outputs and gradients, and a gradient for every parameter the rows do not declare
  unused (in eval mode, where stochastic depth drops no block);
- causality (a decoder's outputs up to t never depend on inputs after t);
- cache equals recomputation (a decoder that declares no KV-cache blocker decodes stepwise to
  the full forward; one that declares blockers refuses a cache naming them);
- padding invariance (kept positions never depend on padded ones);
- a ragged batch equals each prompt alone (``test_ragged.py``: left-padded prompts of different
  lengths decode, per row, to the outputs of each prompt alone).

The quick set runs ``QUICK`` combinations (well under a minute on one core); the ``slow`` set runs
``SLOW`` more (``pytest -m slow``). A failure's test id names its rows, kind and draw index; the
draw is a pure function of ``(SEED, index)`` and the matrix's rows, so ``pytest -k <id>``
reproduces it; a new row of the matrix changes the draws, so new features get sampled too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
import torch

from tests.feature_matrix import CASES, NUM_TOKENS, FeatureCase, build_model, case
from tests.properties.test_ragged import check_ragged_batch
from x_transformers.generation.kv_cache import DynamicKVCache

SEED, QUICK, SLOW = 13, 32, 300
SEQ, PREFILL, TIGHT = 10, 3, {"rtol": 1e-9, "atol": 1e-9}
ROLE_TAGS = ("no_cache", "no_xl", "not_token_logits", "stochastic", "unused_params")


@dataclass(frozen=True)
class Combination:
    index: int
    rows: tuple[FeatureCase, ...]
    kind: str  # 'encoder' or 'decoder'

    @property
    def id(self) -> str:
        return f"{self.index}-{'+'.join(row.id for row in self.rows)}-{self.kind}"

    @property
    def keywords(self) -> set[str]:
        return {name for row in self.rows for name in (*row.layer_kwargs, *row.wrapper_kwargs)}

    def merged(self) -> FeatureCase:
        layer_kwargs, wrapper_kwargs = {}, {}
        for row in self.rows:
            layer_kwargs.update(row.layer_kwargs)
            wrapper_kwargs.update(row.wrapper_kwargs)
        tags = {tag for row in self.rows for tag in row.tags if tag in ROLE_TAGS}
        unused = tuple(fragment for row in self.rows for fragment in row.unused)
        return case(self.id, (self.kind, *tags), wrapper_kwargs, unused, **layer_kwargs)


def _consistent(rows) -> bool:
    """Rows that give one keyword two different values are not a combination of features."""
    seen: dict = {}
    for row in rows:
        for name, value in (*row.layer_kwargs.items(), *row.wrapper_kwargs.items()):
            if name in seen and seen[name] != value:
                return False
            seen[name] = value
    return True


def draw(index: int) -> Combination:
    """The ``index``-th combination: 2-4 distinct rows that agree on shared keywords and share
    a stack kind, from a generator seeded with ``(SEED, index)`` alone."""
    rng = random.Random(SEED * 1_000_003 + index)
    while True:
        rows = tuple(rng.sample(CASES, rng.randint(2, 4)))
        kinds = [k for k in ("encoder", "decoder") if all(row.applies_to(k) for row in rows)]
        if kinds and _consistent(rows):
            return Combination(index, rows, rng.choice(kinds))


def params(indices) -> list:
    return [pytest.param(c, id=c.id) for c in map(draw, indices)]


def tokens(batch=2, seq=SEQ, seed=1):
    return torch.randint(0, NUM_TOKENS, (batch, seq), generator=torch.Generator().manual_seed(seed))


def build_or_check_refusal(combination: Combination):
    """The model, or None after checking that the refusal names one of the keywords."""
    try:
        return build_model(combination.merged(), combination.kind)
    except (ValueError, TypeError) as error:
        named = [name for name in combination.keywords if name in str(error)]
        assert named, f"refusal names none of {sorted(combination.keywords)}: {error}"
        return None


def check_finite_forward_and_backward(model, combination: Combination) -> None:
    """Eval mode (every path on): finite outputs, and a finite gradient for every parameter
    the rows do not declare unused. Train mode (dropout, stochastic depth): finite gradients."""
    x = tokens()
    unused = combination.merged().unused
    for training in (False, True):
        model.train(training).zero_grad(set_to_none=True)
        torch.manual_seed(0)
        out = model(x)
        assert torch.isfinite(out).all(), f"non-finite output (training={training})"
        out.float().pow(2).mean().backward()
        for name, param in model.named_parameters():
            if param.grad is None:
                assert training or any(f in name for f in unused), f"{name}: no gradient"
                continue
            assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient"
    model.eval()


def check_causality(model) -> None:
    x, t = tokens(), 4
    changed = x.clone()
    changed[:, t + 1 :] = (changed[:, t + 1 :] + 1) % NUM_TOKENS
    with torch.no_grad():
        before, after = model(x), model(changed)
    torch.testing.assert_close(before[:, : t + 1], after[:, : t + 1], **TIGHT)


def check_cache_equals_recomputation(model) -> None:
    x = tokens()
    blockers = tuple(model.attn_layers.kv_cache_blockers)
    if blockers:
        with pytest.raises(ValueError) as error, torch.no_grad():
            model(x[:, :PREFILL], cache=DynamicKVCache())
        assert any(name in str(error.value) for name in blockers), str(error.value)
        return
    cache = DynamicKVCache()
    with torch.no_grad():
        full = model(x)
        steps = [model(x[:, :PREFILL], cache=cache)]
        steps += [model(x[:, t : t + 1], cache=cache) for t in range(PREFILL, SEQ)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, **TIGHT)


def check_padding_invariance(model) -> None:
    x = tokens()
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[0, -3:] = False
    changed = x.clone()
    changed[0, -3:] = (changed[0, -3:] + 5) % NUM_TOKENS
    with torch.no_grad():
        before, after = model(x, mask=mask), model(changed, mask=mask)
    torch.testing.assert_close(before[0, :-3], after[0, :-3], **TIGHT)
    torch.testing.assert_close(before[1], after[1], **TIGHT)


def check_combination(combination: Combination) -> None:
    model = build_or_check_refusal(combination)
    if model is None:
        return
    check_finite_forward_and_backward(model, combination)
    check_padding_invariance(model)
    if combination.kind == "decoder":
        check_causality(model)
        check_cache_equals_recomputation(model)
        check_ragged_batch(model, combination.id)


def test_the_sampler_is_seeded_and_mixes_rows():
    first = [draw(i) for i in range(QUICK)]
    assert [c.id for c in first] == [draw(i).id for i in range(QUICK)]
    assert all(2 <= len(c.rows) <= 4 for c in first)
    assert len({row.id for c in first for row in c.rows}) > QUICK
    assert {c.kind for c in first} == {"encoder", "decoder"}


@pytest.mark.parametrize("combination", params(range(QUICK)))
def test_random_combination(combination):
    check_combination(combination)


@pytest.mark.slow
@pytest.mark.parametrize("combination", params(range(QUICK, QUICK + SLOW)))
def test_random_combination_slow(combination):
    check_combination(combination)
