"""Feedforward variants: widths, GLU / SwiGLU, activations, no bias, post-activation norm,
dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from x_transformers import Decoder, Encoder
from x_transformers.feedforward import GLU, FeedForward, ReluSquared
from x_transformers.options import FeedForwardOptions


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def ff(dim=16, **options):
    return FeedForward(dim, FeedForwardOptions(**options)).double()


def linears(module):
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("mult, hidden", [(4, 64), (2, 32), (1.5, 24), (0.5, 8)])
def test_hidden_width_is_mult_times_dim(mult, hidden):
    first, last = linears(ff(mult=mult))
    assert (first.in_features, first.out_features) == (16, hidden)
    assert (last.in_features, last.out_features) == (hidden, 16)


def test_glu_hidden_width():
    module = ff(mult=4, glu=True)
    assert isinstance(module.proj_in, GLU)
    assert module.proj_in.proj.out_features == 2 * 64  # value and gate
    assert module.proj_out.in_features == 64  # the gated hidden width is mult * dim


def test_default_is_gelu_mlp():
    module = ff()
    x = randn(2, 3, 16)
    first, last = linears(module)
    torch.testing.assert_close(module(x), last(F.gelu(first(x))))


@pytest.mark.parametrize(
    "options, activation",
    [
        ({"glu": True}, F.gelu),
        ({"glu": True, "swish": True}, F.silu),
        ({"glu": True, "relu_squared": True}, lambda t: F.relu(t) ** 2),
    ],
)
def test_glu_variants_match_their_formula(options, activation):
    module = ff(**options)
    x = randn(2, 3, 16)
    value_w, gate_w = module.proj_in.proj.weight.chunk(2, dim=0)
    value_b, gate_b = module.proj_in.proj.bias.chunk(2, dim=0)
    hidden = (x @ value_w.T + value_b) * activation(x @ gate_w.T + gate_b)
    torch.testing.assert_close(module(x), module.proj_out(hidden))


def test_swish_and_relu_squared_activations():
    x = torch.tensor([-2.0, -0.5, 0.0, 1.5, 3.0])
    torch.testing.assert_close(ReluSquared()(x), torch.tensor([0.0, 0.0, 0.0, 2.25, 9.0]))
    module = ff(swish=True)
    first, last = linears(module)
    h = randn(1, 2, 16)
    torch.testing.assert_close(module(h), last(first(h) * torch.sigmoid(first(h))))
    module = ff(relu_squared=True)
    first, last = linears(module)
    torch.testing.assert_close(module(h), last(F.relu(first(h)) ** 2))


def test_no_bias_removes_every_bias():
    module = ff(no_bias=True, glu=True, post_act_ln=True)
    assert all(m.bias is None for m in linears(module))
    assert module.post_act_norm.bias is None
    assert sum(p.numel() for p in module.parameters()) == 16 * 128 + 64 + 64 * 16


def test_post_act_ln_normalises_the_hidden_activations():
    module = ff(post_act_ln=True)
    assert isinstance(module.post_act_norm, nn.LayerNorm)
    assert module.post_act_norm.normalized_shape == (64,)
    seen = {}
    module.proj_out.register_forward_pre_hook(lambda _, args: seen.update(h=args[0]))
    module(randn(2, 3, 16))
    torch.testing.assert_close(seen["h"].mean(-1), torch.zeros(2, 3, dtype=torch.float64))


def test_dropout_only_in_training():
    module = ff(dropout=0.5)
    x = randn(2, 8, 16)
    module.eval()
    torch.testing.assert_close(module(x), module(x))
    module.train()
    torch.manual_seed(0)
    assert not torch.allclose(module(x), module(x))


@pytest.mark.parametrize(
    "options, match",
    [
        ({"swish": True, "relu_squared": True}, "'ff_swish' and 'ff_relu_squared'"),
        ({"mult": 0}, "'ff_mult'"),
        ({"dropout": 1.0}, "'ff_dropout'"),
    ],
)
def test_invalid_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        FeedForwardOptions(**options)


def test_tiny_mult_is_refused_with_the_values():
    with pytest.raises(ValueError, match="'ff_mult'=0.01 with dim=16"):
        Encoder(dim=16, depth=1, ff_mult=0.01)


def test_ff_keywords_reach_every_feedforward_of_the_stack():
    stack = Decoder(dim=16, depth=2, heads=2, ff_glu=True, ff_swish=True, ff_mult=2)
    ffs = [b.branch for kind, b in zip(stack.layer_kinds, stack.blocks) if kind == "f"]
    assert len(ffs) == 2
    assert all(
        isinstance(f.proj_in, GLU) and isinstance(f.proj_in.activation, nn.SiLU) for f in ffs
    )
    assert all(f.proj_out.in_features == 32 for f in ffs)
