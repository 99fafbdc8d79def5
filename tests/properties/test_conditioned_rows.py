"""Properties of the conditioned rows of the feature matrix with a different condition per row
and every projection from the condition opened (they start at zero, DiT 2212.09748): the
matrix's own runs give every row one fixed condition (``build_model``), which cannot show that
rows are conditioned independently.

Causality (decoders), padding invariance, batch independence, the condition's gradient, and
KV-cache decoding with the condition given at every step equal to the full forward.
"""

from __future__ import annotations

import pytest
import torch

from tests.feature_matrix import CASES, NUM_TOKENS, build_model
from x_transformers.generation.kv_cache import DynamicKVCache

SEQ, TIGHT = 10, {"rtol": 1e-9, "atol": 1e-9}
ADAPTIVE = ("use_adaptive_layernorm", "use_adaptive_rmsnorm", "use_adaptive_layerscale")
ROWS = [c for c in CASES if any(c.layer_kwargs.get(name) for name in ADAPTIVE)]


def open_every_condition_projection(model, seed=3):
    """Random weights for every projection from the condition (zero at initialisation)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if any(part in name for part in ("to_gamma", "to_gate")):
                param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype))


def pairs():
    return [
        pytest.param(row, kind, id=f"{row.id}-{kind}")
        for row in ROWS
        for kind in ("encoder", "decoder")
        if row.applies_to(kind)
    ]


def conditioned(row, kind):
    model = build_model(row, kind)
    open_every_condition_projection(model)
    return model


def tokens(batch=2, seed=1):
    return torch.randint(0, NUM_TOKENS, (batch, SEQ), generator=torch.Generator().manual_seed(seed))


def conditions(model, batch=2, seed=2):
    width = model.attn_layers.dim_condition
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, width, generator=generator, dtype=torch.float64)


def test_the_conditioned_rows_are_found():
    assert len(ROWS) >= 4, [row.id for row in ROWS]


@pytest.mark.parametrize("row", [p for p in ROWS if p.applies_to("decoder")], ids=lambda r: r.id)
def test_decoder_is_causal_per_condition(row):
    model = conditioned(row, "decoder")
    x, condition = tokens(), conditions(model)
    changed = x.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % NUM_TOKENS
    with torch.no_grad():
        before, after = model(x, condition=condition), model(changed, condition=condition)
    torch.testing.assert_close(before[:, :5], after[:, :5], **TIGHT)
    assert not torch.allclose(before[:, 5:], after[:, 5:])


@pytest.mark.parametrize("row, kind", pairs())
def test_each_row_reads_its_own_condition(row, kind):
    """Batch independence with a different condition per row, and the condition matters."""
    model = conditioned(row, kind)
    x, condition = tokens(batch=3), conditions(model, batch=3)
    with torch.no_grad():
        together = model(x, condition=condition)
        alone = model(x[1:2], condition=condition[1:2])
        swapped = model(x[1:2], condition=condition[2:3])
    torch.testing.assert_close(together[1:2], alone, **TIGHT)
    assert (swapped - alone).abs().max() > 1e-6


@pytest.mark.parametrize("row, kind", pairs())
def test_padding_invariance_per_condition(row, kind):
    model = conditioned(row, kind)
    x, condition = tokens(), conditions(model)
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[0, -3:] = False
    changed = x.clone()
    changed[0, -3:] = (changed[0, -3:] + 5) % NUM_TOKENS
    with torch.no_grad():
        before = model(x, mask=mask, condition=condition)
        after = model(changed, mask=mask, condition=condition)
    torch.testing.assert_close(before[0, :-3], after[0, :-3], **TIGHT)
    torch.testing.assert_close(before[1], after[1], **TIGHT)


@pytest.mark.parametrize("row, kind", pairs())
def test_the_condition_gets_a_finite_gradient(row, kind):
    model = conditioned(row, kind).train()
    condition = conditions(model).requires_grad_()
    model(tokens(), condition=condition).pow(2).mean().backward()
    assert torch.isfinite(condition.grad).all() and condition.grad.abs().sum() > 0


@pytest.mark.parametrize("row", [p for p in ROWS if p.applies_to("decoder")], ids=lambda r: r.id)
def test_cached_decoding_with_the_condition_equals_the_full_forward(row):
    model = conditioned(row, "decoder")
    x, condition = tokens(), conditions(model)
    cache, outputs = DynamicKVCache(), []
    with torch.no_grad():
        full = model(x, condition=condition)
        outputs.append(model(x[:, :3], cache=cache, condition=condition))
        for t in range(3, SEQ):
            outputs.append(model(x[:, t : t + 1], cache=cache, condition=condition))
    torch.testing.assert_close(torch.cat(outputs, dim=1), full, **TIGHT)
