"""Hyper-connections (``num_residual_streams``, 2409.19606)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from x_transformers import Decoder, Encoder
from x_transformers.layers.hyper_connections import HyperConnection, ResidualStreams

DIM, TIGHT = 16, {"rtol": 1e-12, "atol": 1e-12}


def stack(kind=Decoder, **kwargs):
    torch.manual_seed(0)
    return kind(dim=DIM, depth=2, heads=2, attn_dim_head=8, **kwargs).double().eval()


def with_one_stream(model):
    """The same stack (same weights) with one-stream hyper-connections put in."""
    model.residual_streams = ResidualStreams(1)
    for index, block in enumerate(model.blocks):
        block.hyper_connection = HyperConnection(DIM, 1, index).double()
    return model


def randomize(module, seed=4):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype))


def test_one_stream_equals_the_plain_residual_with_the_same_weights():
    x = torch.randn(2, 6, DIM, dtype=torch.float64)
    with torch.no_grad():
        plain = stack()(x)
        hyper = with_one_stream(stack())(x)
    torch.testing.assert_close(hyper, plain, rtol=0, atol=0)


def test_one_stream_with_learned_weights_is_the_scaled_residual():
    """With one stream, h_in = a0 x and the new stream is a1 x + beta f(h_in)."""
    connection = HyperConnection(DIM, 1, 0).double()
    randomize(connection)
    x = torch.randn(2, 5, 1, DIM, dtype=torch.float64)
    h, mixed = connection.width(x)
    out = torch.randn(2, 5, DIM, dtype=torch.float64)
    normed = F.layer_norm(x, (DIM,))
    alpha = connection.static_alpha + connection.dynamic_alpha_scale * torch.tanh(
        normed @ connection.dynamic_alpha
    )  # (b, n, 1, 2)
    beta = connection.static_beta + connection.dynamic_beta_scale * torch.tanh(
        normed @ connection.dynamic_beta
    )  # (b, n, 1)
    torch.testing.assert_close(h, alpha[..., 0, 0:1] * x[..., 0, :], **TIGHT)
    expected = alpha[..., 0, 1:2] * x[..., 0, :] + beta * out
    torch.testing.assert_close(connection.depth(out, mixed)[..., 0, :], expected, **TIGHT)


def test_width_and_depth_match_a_loop_over_streams():
    streams_count = 3
    connection = HyperConnection(DIM, streams_count, 1).double()
    randomize(connection)
    streams = torch.randn(2, 4, streams_count, DIM, dtype=torch.float64)
    out = torch.randn(2, 4, DIM, dtype=torch.float64)
    h, mixed = connection.width(streams)
    new = connection.depth(out, mixed)
    normed = F.layer_norm(streams, (DIM,))
    for b in range(2):
        for t in range(4):
            alpha = connection.static_alpha + connection.dynamic_alpha_scale * torch.tanh(
                normed[b, t] @ connection.dynamic_alpha
            )  # (s, s + 1)
            beta = connection.static_beta + connection.dynamic_beta_scale * torch.tanh(
                normed[b, t] @ connection.dynamic_beta
            )  # (s,)
            expected_h = sum(alpha[s, 0] * streams[b, t, s] for s in range(streams_count))
            torch.testing.assert_close(h[b, t], expected_h, **TIGHT)
            for k in range(streams_count):
                mix = sum(alpha[s, 1 + k] * streams[b, t, s] for s in range(streams_count))
                torch.testing.assert_close(new[b, t, k], mix + beta[k] * out[b, t], **TIGHT)


def test_the_initialisation_feeds_block_i_from_stream_i_mod_s():
    connection = HyperConnection(DIM, 3, 4)
    assert connection.static_alpha[:, 0].tolist() == [0.0, 1.0, 0.0]
    torch.testing.assert_close(connection.static_alpha[:, 1:], torch.eye(3))
    assert connection.static_beta.tolist() == [1.0, 1.0, 1.0]


def test_streams_change_the_output_and_learn():
    x = torch.randn(2, 6, DIM, dtype=torch.float64)
    model = stack(num_residual_streams=4)
    assert model.residual_streams.num_streams == 4
    assert all(block.hyper_connection is not None for block in model.blocks)
    with torch.no_grad():  # at init, s identical streams: the plain pre-norm stack (scaled)
        torch.testing.assert_close(model(x), stack()(x), rtol=1e-4, atol=1e-4)  # norm eps
        for block in model.blocks:
            randomize(block.hyper_connection)
        assert not torch.allclose(model(x), stack()(x))
    model.train()(x).pow(2).sum().backward()
    assert model.blocks[0].hyper_connection.dynamic_alpha.grad.abs().sum() > 0
    assert model.blocks[0].hyper_connection.static_alpha.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs, named",
    [
        (dict(reversible=True), "reversible"),
        (dict(pre_norm=False), "pre_norm"),
        (dict(deepnorm=True), "deepnorm"),
        (dict(scale_residual=True), "scale_residual"),
        (dict(gate_residual=True), "gate_residual"),
    ],
)
def test_refused_combinations_name_both_keywords(kwargs, named):
    with pytest.raises(
        ValueError, match=rf"'{named}'.*'num_residual_streams'|'num_residual_streams'.*'{named}'"
    ):
        Encoder(dim=DIM, depth=2, num_residual_streams=2, **kwargs)


@pytest.mark.parametrize("value, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError)])
def test_the_number_of_streams_is_checked(value, error):
    with pytest.raises(error, match="'num_residual_streams'"):
        Encoder(dim=DIM, depth=2, num_residual_streams=value)


def test_checkpointed_streams_give_the_plain_gradients():
    x = torch.randn(2, 6, DIM, dtype=torch.float64)
    grads = []
    for extra in ({}, {"checkpoint_blocks": True}):
        model = stack(num_residual_streams=2, **extra).train()
        randomize(model.blocks[0].hyper_connection)
        model(x).pow(2).sum().backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-10, atol=1e-10)
