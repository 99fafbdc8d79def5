"""bf16 autocast over the feature matrix: a training forward under
``torch.autocast('cpu', dtype=torch.bfloat16)`` of a float32 model gives finite outputs, and the
backward gives finite gradients (issue 12: "bf16 autocast stable").

Rows that cannot run under bf16 autocast are listed in ``BF16_EXCLUDED`` with the reason; the
test checks that each listed row really fails, so the list cannot go stale silently.
"""

from __future__ import annotations

import pytest
import torch

from tests.feature_matrix import CASES, NUM_TOKENS, build_model, case_kind_pairs

SEQ = 12

# case id -> why it cannot run under bf16 autocast (none so far)
BF16_EXCLUDED: dict[str, str] = {}


def tokens(batch=2, seq=SEQ, seed=3):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, NUM_TOKENS, (batch, seq), generator=generator)


def bf16_step(case, kind):
    model = build_model(case, kind, dtype=torch.float32).train()
    torch.manual_seed(0)
    x = tokens()
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[1, -4:] = False  # a padded row: masked positions are where bf16 -inf fills go wrong
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, mask=mask)
    loss = out.float().pow(2).mean()
    loss.backward()
    return model, out


def assert_finite_step(model, out):
    assert torch.isfinite(out.float()).all(), "non-finite output under bf16 autocast"
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        assert param.grad.dtype == param.dtype, f"{name}: gradient dtype {param.grad.dtype}"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient under bf16"


@pytest.mark.parametrize("case, kind", case_kind_pairs())
def test_bf16_autocast_forward_and_backward_are_finite(case, kind):
    if case.id in BF16_EXCLUDED:
        pytest.skip(BF16_EXCLUDED[case.id])
    model, out = bf16_step(case, kind)
    if "not_token_logits" not in case.tags:
        assert out.dtype == torch.bfloat16, "autocast did not reach the logits projection"
    assert_finite_step(model, out)


def test_the_check_catches_a_bf16_overflow():
    """bf16 keeps float32's exponent range but not beyond: weights near float32's maximum
    overflow a bf16 product, and the check above reports it."""
    case = next(c for c in CASES if c.id == "default")
    model, out = bf16_step(case, "decoder")
    with torch.no_grad():
        model.to_logits.weight.fill_(3e38)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(tokens())
    out.float().sum().backward()
    with pytest.raises(AssertionError, match="non-finite"):
        assert_finite_step(model, out)
