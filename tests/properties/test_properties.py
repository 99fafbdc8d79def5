"""Properties every row of the feature matrix must satisfy (DESIGN.md, "Testing")."""

from __future__ import annotations

import pytest
import torch

from tests.feature_matrix import NUM_TOKENS, build_model, case_kind_pairs, cases_for

SEQ = 10


def tokens(batch=2, seq=SEQ, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, NUM_TOKENS, (batch, seq), generator=generator)


@pytest.mark.parametrize("case", cases_for("decoder"))
def test_decoder_is_causal(case):
    model = build_model(case, "decoder")
    x = tokens()
    changed = x.clone()
    t = 4
    changed[:, t + 1 :] = (changed[:, t + 1 :] + 1) % NUM_TOKENS
    with torch.no_grad():
        before, after = model(x), model(changed)
    torch.testing.assert_close(before[:, : t + 1], after[:, : t + 1], rtol=1e-9, atol=1e-9)
    assert not torch.allclose(before[:, t + 1 :], after[:, t + 1 :])


@pytest.mark.parametrize("case", cases_for("encoder"))
def test_encoder_sees_everything(case):
    model = build_model(case, "encoder")
    x = tokens()
    changed = x.clone()
    changed[:, -1] = (changed[:, -1] + 1) % NUM_TOKENS
    with torch.no_grad():
        before, after = model(x), model(changed)
    assert (before[:, 0] - after[:, 0]).abs().max() > 1e-9


@pytest.mark.parametrize("case, kind", case_kind_pairs())
def test_padding_mask_invariance(case, kind):
    """Positions that are kept never depend on the content of padded positions."""
    model = build_model(case, kind)
    x = tokens()
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[0, -3:] = False
    changed = x.clone()
    changed[0, -3:] = (changed[0, -3:] + 5) % NUM_TOKENS
    with torch.no_grad():
        before, after = model(x, mask=mask), model(changed, mask=mask)
    torch.testing.assert_close(before[0, :-3], after[0, :-3], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(before[1], after[1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("case, kind", case_kind_pairs())
def test_fully_masked_row_is_finite(case, kind):
    model = build_model(case, kind)
    x = tokens()
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[0] = False
    with torch.no_grad():
        out = model(x, mask=mask)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("case, kind", case_kind_pairs())
def test_batch_independence(case, kind):
    model = build_model(case, kind)
    x = tokens(batch=3)
    with torch.no_grad():
        together = model(x)
        alone = model(x[1:2])
    torch.testing.assert_close(together[1:2], alone, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("case, kind", case_kind_pairs())
def test_every_parameter_gets_a_finite_gradient(case, kind):
    model = build_model(case, kind).train()
    torch.manual_seed(0)
    out = model(tokens())
    (out.float().pow(2).mean()).backward()
    for name, param in model.named_parameters():
        if any(fragment in name for fragment in case.unused):
            continue
        assert param.grad is not None, f"{name} received no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("case, kind", case_kind_pairs())
def test_linear_weights_are_stored_input_major(case, kind):
    """Every linear weight of the model is stored input-major (x_transformers/weight_layout.py:
    cheaper decoding products), except one another kind of module also holds (a tied
    embedding)."""
    from x_transformers.weight_layout import is_input_major, linear_weights

    model = build_model(case, kind)
    assert linear_weights(model), "the model has no linear weight to check"
    for name, weight in linear_weights(model).items():
        assert is_input_major(weight), f"{name} is stored row-major"
