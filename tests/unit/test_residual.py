"""Residual connections: plain, NormFormer's learned scale, GTrXL's gate, ReZero in a stack,
macaron's half step, and stochastic depth."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from x_transformers import Decoder, Encoder
from x_transformers.residual import (
    GRUGatedResidual,
    LearnedResidualScale,
    Residual,
    ReZero,
    Scale,
    ScaledResidual,
)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_plain_and_constant_residuals():
    y, x = randn(2, 3, 4, seed=1), randn(2, 3, 4, seed=2)
    torch.testing.assert_close(Residual()(y, x), y + x)
    torch.testing.assert_close(ScaledResidual(1.5)(y, x), y + 1.5 * x)
    torch.testing.assert_close(Scale(0.5)(y), 0.5 * y)
    torch.testing.assert_close(ReZero().double()(y), torch.zeros_like(y))


def test_learned_residual_scale_starts_at_one_and_scales_per_feature():
    module = LearnedResidualScale(4).double()
    y, x = randn(2, 3, 4, seed=1), randn(2, 3, 4, seed=2)
    torch.testing.assert_close(module(y, x), y + x)
    with torch.no_grad():
        module.residual_scale.copy_(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    torch.testing.assert_close(module(y, x), y + x * torch.tensor([0.0, 1.0, 2.0, 3.0]))


def test_scale_residual_in_the_stack():
    stack = Decoder(dim=16, depth=1, heads=2, scale_residual=True)
    assert all(isinstance(b.residual, LearnedResidualScale) for b in stack.blocks)


def test_gru_gate_matches_the_gtrxl_equations():
    dim = 6
    gate = GRUGatedResidual(dim).double()
    for p in gate.parameters():
        nn.init.normal_(p, std=0.5)
    y, x = randn(2, 3, dim, seed=1), randn(2, 3, dim, seed=2)
    w_r, w_z, w_g = gate.from_branch.weight.chunk(3, dim=0)
    u_r, u_z = gate.from_residual.weight.chunk(2, dim=0)
    u_g, b_g = gate.candidate_from_residual.weight, gate.gate_bias
    r = torch.sigmoid(y @ w_r.T + x @ u_r.T)
    z = torch.sigmoid(y @ w_z.T + x @ u_z.T - b_g)
    h = torch.tanh(y @ w_g.T + (r * x) @ u_g.T)
    torch.testing.assert_close(gate(y, x), (1 - z) * x + z * h)


def test_gru_gate_known_value_with_zero_weights():
    # all weights zero: z = sigmoid(-2), h = tanh(0) = 0, so out = (1 - sigmoid(-2)) * x
    gate = GRUGatedResidual(4).double()
    for linear in (gate.from_branch, gate.from_residual, gate.candidate_from_residual):
        nn.init.zeros_(linear.weight)
    x = randn(1, 2, 4)
    expected = (1 - torch.sigmoid(torch.tensor(-2.0, dtype=torch.float64))) * x
    torch.testing.assert_close(gate(randn(1, 2, 4, seed=3), x), expected)
    assert torch.all(gate.gate_bias == 2.0)


def test_gate_residual_composes_with_post_norm():
    stack = Encoder(dim=16, depth=1, heads=2, gate_residual=True, pre_norm=False).double()
    block = stack.blocks[0]
    assert isinstance(block.residual, GRUGatedResidual)
    assert isinstance(block.post_residual_norm, nn.LayerNorm)
    x = randn(1, 5, 16)
    expected = block.post_residual_norm(block.residual(block.branch(x)[0], x))
    torch.testing.assert_close(block(x)[0], expected)


def test_deepnorm_alpha_multiplies_the_learned_scale():
    module = LearnedResidualScale(4, alpha=1.5).double()
    y, x = randn(2, 3, 4, seed=1), randn(2, 3, 4, seed=2)
    torch.testing.assert_close(module(y, x), y + 1.5 * x)
    with torch.no_grad():
        module.residual_scale.copy_(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    torch.testing.assert_close(module(y, x), y + 1.5 * torch.tensor([0.0, 1.0, 2.0, 3.0]) * x)


def test_deepnorm_with_scale_residual_starts_as_deepnorm_and_learns_the_scale():
    def stack(**kwargs):
        torch.manual_seed(0)
        return Encoder(dim=16, depth=3, heads=2, deepnorm=True, **kwargs).double()

    plain, scaled = stack(), stack(scale_residual=True)
    for block, reference in zip(scaled.blocks, plain.blocks):
        assert isinstance(block.residual, LearnedResidualScale)
        assert block.residual.alpha == reference.residual.alpha == (2 * 3) ** 0.25
    x = randn(1, 5, 16)
    torch.testing.assert_close(scaled(x), plain(x))
    scaled(x).pow(2).sum().backward()
    assert all(b.residual.residual_scale.grad.abs().sum() > 0 for b in scaled.blocks)


def test_gru_gate_takes_the_learned_scaled_residual():
    dim = 6
    gate = GRUGatedResidual(dim, scale_residual=True).double()
    for p in gate.parameters():
        nn.init.normal_(p, std=0.5)
    reference = GRUGatedResidual(dim).double()
    reference.load_state_dict({k: v for k, v in gate.state_dict().items() if k != "residual_scale"})
    y, x = randn(2, 3, dim, seed=1), randn(2, 3, dim, seed=2)
    torch.testing.assert_close(gate(y, x), reference(y, gate.residual_scale * x))
    assert not torch.allclose(gate(y, x), reference(y, x))


def test_gate_with_scale_residual_starts_as_the_gate_alone():
    def stack(**kwargs):
        torch.manual_seed(0)
        return Decoder(dim=16, depth=2, heads=2, gate_residual=True, **kwargs).double()

    plain, scaled = stack(), stack(scale_residual=True)
    assert all(b.residual.residual_scale is not None for b in scaled.blocks)
    x = randn(1, 5, 16)
    torch.testing.assert_close(scaled(x), plain(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"deepnorm": True, "gate_residual": True},
        {"deepnorm": True, "gate_residual": True, "scale_residual": True},
    ],
)
def test_deepnorm_with_the_gate_is_refused(kwargs):
    with pytest.raises(ValueError, match="derived for the additive residual") as error:
        Encoder(dim=16, depth=1, **kwargs)
    assert "'deepnorm'" in str(error.value) and "'gate_residual'" in str(error.value)


# --- ReZero with open gates keeps the stack's properties ---------------------------------------


def open_rezero_gates(stack, value=1.0):
    with torch.no_grad():
        for block in stack.blocks:
            block.branch_scale.gate.fill_(value)
    return stack


def test_rezero_encoder_sees_every_position_once_gates_open():
    stack = open_rezero_gates(Encoder(dim=16, depth=2, heads=2, use_rezero=True).double())
    x = randn(1, 6, 16)
    changed = x.clone()
    changed[:, -1] += 1.0
    assert (stack(x)[:, 0] - stack(changed)[:, 0]).abs().max() > 1e-6


def test_rezero_decoder_stays_causal_once_gates_open():
    stack = open_rezero_gates(Decoder(dim=16, depth=2, heads=2, use_rezero=True).double())
    x = randn(1, 6, 16)
    changed = x.clone()
    changed[:, 4:] += 1.0
    torch.testing.assert_close(stack(x)[:, :4], stack(changed)[:, :4])


def test_rezero_gradients_reach_the_branches_once_gates_open():
    stack = open_rezero_gates(Decoder(dim=16, depth=1, heads=2, use_rezero=True).double())
    stack(randn(1, 4, 16)).pow(2).sum().backward()
    for name, param in stack.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


# --- macaron half steps ------------------------------------------------------------------------


def test_macaron_feedforwards_are_half_steps():
    stack = Encoder(dim=16, depth=2, heads=2, macaron=True).double()
    for kind, block in zip(stack.layer_kinds, stack.blocks):
        if kind == "f":
            assert isinstance(block.branch_scale, Scale) and block.branch_scale.value == 0.5
        else:
            assert block.branch_scale is None
    block, x = stack.blocks[0], randn(1, 4, 16)
    torch.testing.assert_close(block(x)[0], x + 0.5 * block.branch(block.pre_branch_norm(x)))


def test_macaron_with_rezero_chains_both_scales():
    stack = Decoder(dim=16, depth=1, heads=2, macaron=True, use_rezero=True)
    scale = stack.blocks[0].branch_scale
    assert isinstance(scale, nn.Sequential)
    assert [type(m) for m in scale] == [Scale, ReZero]


# --- stochastic depth --------------------------------------------------------------------------


def test_layer_dropout_only_in_training():
    torch.manual_seed(0)
    stack = Encoder(dim=16, depth=2, heads=2, layer_dropout=0.5).double()
    x = randn(1, 4, 16)
    stack.eval()
    assert not any(stack._skip_block() for _ in range(200))
    reference = stack(x)
    torch.testing.assert_close(stack(x), reference)
    stack.train()
    skips = [stack._skip_block() for _ in range(2000)]
    assert 0.45 < sum(skips) / len(skips) < 0.55
    outputs = [stack(x) for _ in range(20)]
    assert any(not torch.allclose(out, reference) for out in outputs)


def test_layer_dropout_skipping_everything_leaves_the_final_norm_of_the_input():
    stack = Encoder(dim=16, depth=2, heads=2, layer_dropout=0.5).double().train()
    stack._skip_block = lambda: True
    x = randn(1, 4, 16)
    torch.testing.assert_close(stack(x), stack.final_norm(x))


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_layer_dropout_out_of_range(value):
    with pytest.raises(ValueError, match="'layer_dropout'"):
        Encoder(dim=16, depth=1, layer_dropout=value)
