"""Non-finite numbers in continuous inputs never cross a mask (issue 13, item 4): a NaN or an
infinity at a padded input position or a masked context position leaves every kept output as
it would be with a finite value there, and one at a kept position raises a clear error."""

from __future__ import annotations

import pytest
import torch

from x_transformers import (
    ContinuousAutoregressiveWrapper,
    ContinuousTransformerWrapper,
    CrossAttender,
    Decoder,
    Encoder,
)
from x_transformers.finite_inputs import check_finite

DIM_IN, DIM = 4, 16
BAD = [float("nan"), float("inf"), -float("inf")]


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def continuous(stack_cls, **layer_kwargs):
    torch.manual_seed(0)
    stack = stack_cls(dim=DIM, depth=2, heads=2, **layer_kwargs)
    model = ContinuousTransformerWrapper(
        dim_in=DIM_IN, dim_out=DIM_IN, max_seq_len=16, attn_layers=stack
    )
    return model.double().eval()


def padded_batch():
    x, mask = randn(2, 6, DIM_IN), torch.ones(2, 6, dtype=torch.bool)
    mask[0, -2:] = False
    return x, mask


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("stack_cls", [Encoder, Decoder])
def test_non_finite_at_a_padded_position_changes_no_kept_output(stack_cls, bad):
    model = continuous(stack_cls)
    x, mask = padded_batch()
    poisoned = x.clone()
    poisoned[0, -1] = bad
    poisoned[0, -2, 1] = bad
    with torch.no_grad():
        clean, out = model(x, mask=mask), model(poisoned, mask=mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, :-2], clean[0, :-2], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[1], clean[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("stack_cls", [Encoder, Decoder])
def test_a_bare_stack_zeroes_its_padded_inputs(stack_cls, bad):
    """Called directly (no wrapper), a stack also keeps a padded position's value out of every
    product: the kept outputs equal those of a finite value there."""
    torch.manual_seed(0)
    stack = stack_cls(dim=DIM, depth=2, heads=2).double().eval()
    x, mask = randn(2, 6, DIM), torch.ones(2, 6, dtype=torch.bool)
    mask[0, -2:] = False
    poisoned = x.clone()
    poisoned[0, -1] = bad
    with torch.no_grad():
        clean, out = stack(x, mask=mask), stack(poisoned, mask=mask)
    torch.testing.assert_close(out[mask], clean[mask], rtol=1e-12, atol=1e-12)


def test_a_causal_decoder_keeps_earlier_positions_from_a_masked_later_nan():
    model = continuous(Decoder)
    x = randn(1, 6, DIM_IN)
    mask = torch.ones(1, 6, dtype=torch.bool)
    mask[0, 3] = False
    poisoned = x.clone()
    poisoned[0, 3] = float("nan")
    with torch.no_grad():
        out = model(poisoned, mask=mask)
        clean = model(x, mask=mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, :3], clean[0, :3], rtol=1e-12, atol=1e-12)


def test_gradients_stay_finite_with_a_nan_at_a_padded_position():
    model = continuous(Encoder).train()
    x, mask = padded_batch()
    x[0, -1] = float("nan")
    x.requires_grad_(True)
    model(x, mask=mask).pow(2).mean().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[0, -2:] == 0).all()
    for name, param in model.named_parameters():
        assert param.grad is None or torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("masked", [False, True])
def test_non_finite_at_a_kept_position_raises(bad, masked):
    model = continuous(Decoder)
    x, mask = padded_batch()
    x[1, 3, 2] = bad  # row 1 keeps every position
    with pytest.raises(ValueError, match=r"'x' holds a NaN or an infinity.*row 1, position 3"):
        model(x, mask=mask if masked else None)


@pytest.mark.parametrize("stack_kwargs", [{"cross_attend": True}, {"only_cross": True}])
def test_nan_in_a_masked_context_position_changes_nothing(stack_kwargs):
    torch.manual_seed(0)
    stack_cls = Decoder if "cross_attend" in stack_kwargs else CrossAttender
    kwargs = {} if stack_cls is CrossAttender else stack_kwargs
    stack = stack_cls(dim=DIM, depth=2, heads=2, **kwargs).double().eval()
    x, context = randn(2, 5, DIM, seed=1), randn(2, 7, DIM, seed=2)
    context_mask = torch.ones(2, 7, dtype=torch.bool)
    context_mask[0, -3:] = False
    poisoned = context.clone()
    poisoned[0, -3:] = float("nan")
    with torch.no_grad():
        clean = stack(x, context=context, context_mask=context_mask)
        out = stack(x, context=poisoned, context_mask=context_mask)
    torch.testing.assert_close(out, clean, rtol=1e-12, atol=1e-12)


def test_nan_in_a_masked_context_position_of_the_continuous_wrapper():
    model = continuous(Decoder, cross_attend=True)
    x, context = randn(2, 5, DIM_IN, seed=1), randn(2, 7, DIM, seed=2)
    context_mask = torch.ones(2, 7, dtype=torch.bool)
    context_mask[1, :2] = False
    poisoned = context.clone()
    poisoned[1, :2] = float("inf")
    with torch.no_grad():
        clean = model(x, context=context, context_mask=context_mask)
        out = model(x, context=poisoned, context_mask=context_mask)
    torch.testing.assert_close(out, clean, rtol=1e-12, atol=1e-12)


def test_autoregressive_loss_ignores_a_nan_padded_target():
    wrapper = ContinuousAutoregressiveWrapper(continuous(Decoder))
    x, mask = padded_batch()
    poisoned = x.clone()
    poisoned[0, -1] = float("nan")
    loss = wrapper(poisoned, mask=mask)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, wrapper(x, mask=mask))
    x[0, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="'x' holds a NaN"):
        wrapper(x, mask=mask)


def test_the_device_path_is_an_asynchronous_assertion(monkeypatch):
    """Off the CPU (and while compiling) the check is ``torch._assert_async``, no host sync;
    on a CPU tensor that assertion fails at once, which shows it carries the message."""
    calls = []
    real_assert = torch._assert_async

    def recording_assert(condition, message):
        calls.append(message)
        return real_assert(condition, message)

    monkeypatch.setattr(torch, "_assert_async", recording_assert)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    check_finite(torch.ones(1, 2, 3), "x")
    assert len(calls) == 1
    with pytest.raises(RuntimeError, match="'x' holds a NaN or an infinity"):
        check_finite(torch.tensor([[[float("nan")]]]), "x")
