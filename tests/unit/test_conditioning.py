"""Conditioning (DiT, 2212.09748): adaptive norms and adaLN-Zero gates read ``condition=``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from x_transformers import (
    AutoregressiveWrapper,
    ContinuousTransformerWrapper,
    Decoder,
    Encoder,
    TransformerWrapper,
)
from x_transformers.layers import reversible
from x_transformers.layers.conditioning import AdaptiveLayerNorm, AdaptiveRMSNorm

TIGHT = {"rtol": 1e-12, "atol": 1e-12}


def stack(kind=Decoder, **kwargs):
    torch.manual_seed(0)
    return kind(dim=16, depth=2, heads=2, attn_dim_head=8, **kwargs).double().eval()


def open_every_condition_projection(model, seed=3):
    """Random weights for every projection from the condition (zero at initialisation)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if any(part in name for part in ("to_gamma", "to_gate")):
                param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"use_adaptive_layernorm": True, "dim_condition": 6},
        {"use_adaptive_rmsnorm": True, "dim_condition": 6},
        {"use_adaptive_layerscale": True, "dim_condition": 6},
        {"use_adaptive_layernorm": True, "pre_norm": False, "dim_condition": 6},
    ],
    ids=["layernorm", "rmsnorm", "layerscale", "layernorm_post_norm"],
)
def test_changing_the_condition_changes_the_output(kwargs):
    model = stack(**kwargs)
    open_every_condition_projection(model)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    condition = torch.randn(2, 6, dtype=torch.float64)
    other = condition.clone()
    other[1] += 1.0
    with torch.no_grad():
        before, after = model(x, condition=condition), model(x, condition=other)
    torch.testing.assert_close(before[0], after[0], **TIGHT)  # row 0 kept its condition
    assert (before[1] - after[1]).abs().max() > 1e-3


def test_zero_initialised_layerscale_gives_the_unconditioned_stream():
    """adaLN-Zero at init: every block is the identity, the output is final_norm(x), exactly."""
    model = stack(use_adaptive_layerscale=True, use_adaptive_layernorm=True, dim_condition=6)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    condition = torch.randn(2, 6, dtype=torch.float64)
    with torch.no_grad():
        out = model(x, condition=condition)
    torch.testing.assert_close(out, F.layer_norm(x, (16,)), rtol=0, atol=0)
    open_every_condition_projection(model)  # the test can fail: open gates change the stream
    with torch.no_grad():
        assert (model(x, condition=condition) - out).abs().max() > 1e-3


def test_adaptive_norms_start_as_the_plain_norm_with_unit_gain():
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    condition = torch.randn(3, 5, dtype=torch.float64)
    layer = AdaptiveLayerNorm(8, 5).double()
    torch.testing.assert_close(layer(x, condition), F.layer_norm(x, (8,)), **TIGHT)
    rms = AdaptiveRMSNorm(8, 5).double()
    expected = x / x.pow(2).mean(-1, keepdim=True).add(1e-8).sqrt()
    torch.testing.assert_close(rms(x, condition), expected, **TIGHT)


def test_adaptive_layernorm_is_the_dit_formula():
    layer = AdaptiveLayerNorm(8, 5).double()
    open_every_condition_projection(layer)
    x, condition = torch.randn(3, 4, 8).double(), torch.randn(3, 5).double()
    gamma, beta = layer.to_gamma_beta(condition).chunk(2, dim=-1)
    expected = F.layer_norm(x, (8,)) * (1 + gamma[:, None]) + beta[:, None]
    torch.testing.assert_close(layer(x, condition), expected, **TIGHT)


def test_the_wrappers_pass_the_condition_on():
    torch.manual_seed(0)
    layers = dict(dim=16, depth=1, heads=2, use_adaptive_layernorm=True, dim_condition=4)
    token = TransformerWrapper(num_tokens=11, max_seq_len=8, attn_layers=Decoder(**layers))
    continuous = ContinuousTransformerWrapper(
        dim_in=3, dim_out=2, max_seq_len=8, attn_layers=Encoder(**layers)
    )
    for model, x in ((token, torch.randint(0, 11, (2, 5))), (continuous, torch.randn(2, 5, 3))):
        open_every_condition_projection(model)
        a, b = torch.randn(2, 4), torch.randn(2, 4)
        assert not torch.allclose(model(x, condition=a), model(x, condition=b))
        with pytest.raises(ValueError, match="condition"):
            model(x)


def test_the_condition_is_checked():
    model = stack(use_adaptive_rmsnorm=True, dim_condition=6)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"dim_condition=6"):
        model(x)
    with pytest.raises(ValueError, match=r"\(batch=2, dim_condition=6\)"):
        model(x, condition=torch.randn(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="reads none"):
        stack()(x, condition=torch.randn(2, 6, dtype=torch.float64))


def test_the_dim_condition_defaults_to_dim_and_needs_a_reader():
    model = stack(use_adaptive_layernorm=True)
    assert model.dim_condition == 16
    with pytest.raises(ValueError, match="'dim_condition'=6 does nothing"):
        stack(dim_condition=6)


@pytest.mark.parametrize("other", ["use_rmsnorm", "use_scalenorm", "use_adaptive_rmsnorm"])
def test_two_norms_are_refused(other):
    with pytest.raises(
        ValueError,
        match=rf"'{other}'.*'use_adaptive_layernorm'|'use_adaptive_layernorm'.*'{other}'",
    ):
        stack(use_adaptive_layernorm=True, **{other: True})


def condition_gradients(model, x, condition):
    """Output, parameter gradients and the condition's gradient of one backward pass."""
    open_every_condition_projection(model)
    given = condition.clone().requires_grad_()
    out = model(x, condition=given)
    out.pow(2).sum().backward()
    return out, {name: p.grad for name, p in model.named_parameters()}, given.grad


def assert_same_gradients(first, second):
    out, grads, condition_grad = first
    expected_out, expected_grads, expected_condition_grad = second
    assert expected_condition_grad.abs().sum() > 0
    torch.testing.assert_close(out, expected_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(condition_grad, expected_condition_grad, rtol=1e-9, atol=1e-9)
    for name, grad in expected_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-9, atol=1e-9)


KWARGS = dict(use_adaptive_layernorm=True, use_adaptive_layerscale=True, dim_condition=6)


def test_checkpointed_stacks_read_the_condition():
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    condition = torch.randn(2, 6, dtype=torch.float64)
    plain = condition_gradients(stack(**KWARGS).train(), x, condition)
    checkpointed = stack(**KWARGS, checkpoint_blocks=True).train()
    assert_same_gradients(condition_gradients(checkpointed, x, condition), plain)


def test_reversible_stacks_read_the_condition(monkeypatch):
    """The coupling holds with a fixed condition: the hand-written backward gives plain
    autograd's gradients, the condition's included."""
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    condition = torch.randn(2, 6, dtype=torch.float64)
    model = stack(**KWARGS, reversible=True).train()
    hand_written = condition_gradients(model, x, condition)
    model.zero_grad(set_to_none=True)
    monkeypatch.setattr(
        reversible.ReversibleFunction, "apply", lambda coupling, x, *rest: coupling.forward(x, x)
    )
    assert_same_gradients(hand_written, condition_gradients(model, x, condition))


def test_generation_passes_the_condition_to_every_step():
    """Greedy tokens with the KV cache equal those without it, and depend on the condition."""
    torch.manual_seed(0)
    layers = Decoder(dim=16, depth=2, heads=2, use_adaptive_layernorm=True, dim_condition=4)
    net = TransformerWrapper(num_tokens=11, max_seq_len=16, attn_layers=layers).double().eval()
    open_every_condition_projection(net)
    wrapper = AutoregressiveWrapper(net)
    prompt = torch.randint(0, 11, (2, 3))
    condition = torch.randn(2, 4, dtype=torch.float64) * 3
    greedy = dict(seq_len=6, temperature=0.0, condition=condition)
    cached = wrapper.generate(prompt, cache_kv=True, **greedy)
    assert torch.equal(cached, wrapper.generate(prompt, cache_kv=False, **greedy))
    flipped = wrapper.generate(prompt, cache_kv=True, **{**greedy, "condition": -condition})
    assert not torch.equal(cached, flipped)
