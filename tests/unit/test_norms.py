"""Norms of the layer stack: RMSNorm, ScaleNorm, post-norm, sandwich norm, ReZero and DeepNorm."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import x_transformers
from x_transformers import Decoder, Encoder, RMSNorm, ScaleNorm, XTransformer
from x_transformers.deepnorm import (
    encoder_decoder_constants,
    single_stack_constants,
)
from x_transformers.residual import ReZero, ScaledResidual


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- RMSNorm / ScaleNorm against their formulas ----------------------------------------------


def test_norms_are_exported():
    assert "RMSNorm" in x_transformers.__all__ and "ScaleNorm" in x_transformers.__all__


def test_rmsnorm_matches_its_formula():
    x = randn(2, 3, 8)
    norm = RMSNorm(8).double()
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1, 9, dtype=torch.float64))
    rms = torch.sqrt((x**2).sum(-1, keepdim=True) / 8)
    torch.testing.assert_close(norm(x), x / rms * torch.arange(1, 9, dtype=torch.float64))


def test_rmsnorm_known_value():
    # x = (3, 4): mean square = 12.5, so x / sqrt(12.5)
    out = RMSNorm(2, eps=0.0)(torch.tensor([[3.0, 4.0]]))
    torch.testing.assert_close(out, torch.tensor([[3.0, 4.0]]) / math.sqrt(12.5))


def test_scalenorm_matches_its_formula_and_initial_scale():
    x = randn(2, 3, 16)
    norm = ScaleNorm(16).double()
    assert norm.scale.item() == pytest.approx(4.0)  # sqrt(dim)
    expected = 4.0 * x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    torch.testing.assert_close(norm(x), expected)
    assert sum(p.numel() for p in norm.parameters()) == 1  # one scalar gain


def test_scalenorm_known_value_and_zero_input():
    out = ScaleNorm(4)(torch.tensor([[3.0, 4.0, 0.0, 0.0]]))  # ||x|| = 5, g = 2
    torch.testing.assert_close(out, torch.tensor([[1.2, 1.6, 0.0, 0.0]]))
    assert torch.isfinite(ScaleNorm(4)(torch.zeros(1, 4))).all()
    assert torch.isfinite(RMSNorm(4)(torch.zeros(1, 4))).all()


@pytest.mark.parametrize(
    "kwargs, norm_type",
    [({}, nn.LayerNorm), ({"use_rmsnorm": True}, RMSNorm), ({"use_scalenorm": True}, ScaleNorm)],
)
def test_the_stack_uses_the_chosen_norm_everywhere(kwargs, norm_type):
    stack = Decoder(dim=16, depth=2, heads=2, **kwargs)
    norms = [b.pre_branch_norm for b in stack.blocks] + [stack.final_norm]
    assert all(type(n) is norm_type for n in norms)


# --- placement: pre-norm, post-norm, sandwich --------------------------------------------------


def test_pre_norm_layout():
    stack = Encoder(dim=16, depth=1, heads=2)
    block = stack.blocks[0]
    assert isinstance(block.pre_branch_norm, nn.LayerNorm)
    assert block.post_residual_norm is None
    assert isinstance(stack.final_norm, nn.LayerNorm)


def test_post_norm_output_of_every_block_is_normalised():
    stack = Encoder(dim=16, depth=2, heads=2, pre_norm=False).double()
    block = stack.blocks[0]
    assert block.pre_branch_norm is None
    assert isinstance(block.post_residual_norm, nn.LayerNorm)
    assert isinstance(stack.final_norm, nn.Identity)
    out = stack(randn(2, 5, 16))  # the last block ends with a LayerNorm of unit gain, zero bias
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 5, dtype=torch.float64))
    torch.testing.assert_close(
        out.var(-1, unbiased=False), torch.ones(2, 5, dtype=torch.float64), rtol=1e-4, atol=1e-4
    )


def test_sandwich_norm_normalises_every_branch_output():
    stack = Decoder(dim=16, depth=1, heads=2, sandwich_norm=True).double()
    block = stack.blocks[0]
    assert isinstance(block.pre_branch_norm, nn.LayerNorm)
    assert isinstance(block.post_branch_norm, nn.LayerNorm)
    x = randn(1, 4, 16)
    branch_out = block.post_branch_norm(block.branch(block.pre_branch_norm(x))[0])
    torch.testing.assert_close(block(x)[0], x + branch_out)
    torch.testing.assert_close(branch_out.mean(-1), torch.zeros(1, 4, dtype=torch.float64))


# --- ReZero ------------------------------------------------------------------------------------


def test_rezero_output_equals_input_at_initialisation():
    stack = Decoder(dim=16, depth=3, heads=2, use_rezero=True, ff_glu=True).double()
    x = randn(2, 6, 16)
    torch.testing.assert_close(stack(x), x, rtol=0, atol=0)
    assert not any(isinstance(m, (nn.LayerNorm, RMSNorm, ScaleNorm)) for m in stack.modules())
    assert all(isinstance(b.branch_scale, ReZero) for b in stack.blocks)


def test_rezero_gate_scales_the_branch():
    stack = Encoder(dim=16, depth=1, heads=2, use_rezero=True).double()
    block = stack.blocks[0]
    with torch.no_grad():
        block.branch_scale.gate.fill_(0.5)
    x = randn(1, 4, 16)
    torch.testing.assert_close(block(x)[0], x + 0.5 * block.branch(x)[0])


# --- conflicts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, names",
    [
        ({"use_scalenorm": True, "use_rmsnorm": True}, ("use_scalenorm", "use_rmsnorm")),
        ({"use_rezero": True, "use_rmsnorm": True}, ("use_rmsnorm", "use_rezero")),
        ({"use_rezero": True, "sandwich_norm": True}, ("use_rezero", "sandwich_norm")),
        ({"use_rezero": True, "pre_norm": False}, ("use_rezero", "pre_norm")),
        ({"sandwich_norm": True, "pre_norm": False}, ("sandwich_norm", "pre_norm")),
        ({"deepnorm": True, "sandwich_norm": True}, ("deepnorm", "sandwich_norm")),
        ({"deepnorm_decoder_depth": 3}, ("deepnorm_decoder_depth", "deepnorm")),
    ],
)
def test_contradicting_norm_keywords_are_refused(kwargs, names):
    with pytest.raises(ValueError) as error:
        Encoder(dim=16, depth=1, **kwargs)
    for name in names:
        assert f"'{name}" in str(error.value)


# --- DeepNorm ----------------------------------------------------------------------------------

# (depth, alpha, beta) of encoder-only / decoder-only: (2N)^(1/4), (8N)^(-1/4)
SINGLE_STACK_TABLE = [
    (1, 1.18921, 0.59460),
    (6, 1.86121, 0.37992),
    (12, 2.21336, 0.31947),
    (100, 3.76060, 0.18803),
    (1000, 6.68740, 0.10574),
]
# (N, M, encoder alpha, encoder beta, decoder alpha, decoder beta)
ENCODER_DECODER_TABLE = [
    (6, 6, 1.41794, 0.49699, 2.05977, 0.34329),  # 0.81 (N^4 M)^(1/16), 0.87 (N^4 M)^(-1/16), ...
    (12, 12, 1.76088, 0.40020, 2.44949, 0.28868),
    (100, 100, 3.41574, 0.20631, 4.16179, 0.16990),
    (18, 6, 1.86611, 0.37763, 2.05977, 0.34329),
]


@pytest.mark.parametrize("depth, alpha, beta", SINGLE_STACK_TABLE)
def test_deepnorm_single_stack_constants(depth, alpha, beta):
    constants = single_stack_constants(depth)
    assert constants.alpha == pytest.approx(alpha, abs=1e-5)
    assert constants.beta == pytest.approx(beta, abs=1e-5)


@pytest.mark.parametrize("n, m, enc_alpha, enc_beta, dec_alpha, dec_beta", ENCODER_DECODER_TABLE)
def test_deepnorm_encoder_decoder_constants(n, m, enc_alpha, enc_beta, dec_alpha, dec_beta):
    encoder, decoder = encoder_decoder_constants(n, m)
    assert (encoder.alpha, encoder.beta) == pytest.approx((enc_alpha, enc_beta), abs=1e-5)
    assert (decoder.alpha, decoder.beta) == pytest.approx((dec_alpha, dec_beta), abs=1e-5)


@pytest.mark.parametrize("stack_cls", [Encoder, Decoder])
@pytest.mark.parametrize("depth, alpha, beta", SINGLE_STACK_TABLE[:3])
def test_deepnorm_stack_is_post_norm_with_scaled_residual(stack_cls, depth, alpha, beta):
    stack = stack_cls(dim=8, depth=depth, heads=1, attn_dim_head=8, deepnorm=True)
    for block in stack.blocks:
        assert isinstance(block.residual, ScaledResidual)
        assert block.residual.alpha == pytest.approx(alpha, abs=1e-5)
        assert block.pre_branch_norm is None
        assert isinstance(block.post_residual_norm, nn.LayerNorm)
    assert isinstance(stack.final_norm, nn.Identity)


def test_deepnorm_block_computes_norm_of_branch_plus_alpha_x():
    stack = Encoder(dim=16, depth=2, heads=2, deepnorm=True).double()
    block, x = stack.blocks[1], randn(1, 5, 16)
    expected = block.post_residual_norm(block.branch(x) + (2 * 2) ** 0.25 * x)
    torch.testing.assert_close(block(x)[0], expected)


def xavier_std(fan_out, fan_in, gain):
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def test_deepnorm_initialisation_gains():
    torch.manual_seed(0)
    dim, depth = 64, 6
    stack = Encoder(dim=dim, depth=depth, heads=4, attn_dim_head=32, deepnorm=True)
    beta = (8 * depth) ** -0.25
    attention, feedforward = stack.blocks[0].branch, stack.blocks[1].branch
    inner = 4 * 32
    keys, values = attention.proj.to_kv.weight[:inner], attention.proj.to_kv.weight[inner:]
    cases = [
        (attention.proj.to_q.weight, xavier_std(inner, dim, 1.0)),
        (keys, xavier_std(inner, dim, 1.0)),
        (values, xavier_std(inner, dim, beta)),
        (attention.proj.to_out.weight, xavier_std(dim, inner, beta)),
        (feedforward.proj_in[0].weight, xavier_std(4 * dim, dim, beta)),
        (feedforward.proj_out.weight, xavier_std(dim, 4 * dim, beta)),
    ]
    for weight, std in cases:
        assert weight.std().item() == pytest.approx(std, rel=0.05)
    assert torch.count_nonzero(feedforward.proj_in[0].bias) == 0


def test_xtransformer_gives_deepnorm_the_encoder_decoder_constants():
    model = XTransformer(
        dim=16,
        enc_num_tokens=8,
        enc_depth=6,
        enc_max_seq_len=8,
        enc_heads=2,
        dec_num_tokens=8,
        dec_depth=3,
        dec_max_seq_len=8,
        dec_heads=2,
        enc_deepnorm=True,
        dec_deepnorm=True,
    )
    expected_encoder, expected_decoder = encoder_decoder_constants(6, 3)
    encoder_blocks = model.encoder.attn_layers.blocks
    decoder_blocks = model.decoder.net.attn_layers.blocks
    assert {b.residual.alpha for b in encoder_blocks} == {expected_encoder.alpha}
    assert {b.residual.alpha for b in decoder_blocks} == {expected_decoder.alpha}
    assert expected_decoder.alpha == pytest.approx(9**0.25)


def test_deepnorm_decoder_depth_is_only_for_an_encoder():
    with pytest.raises(ValueError, match="deepnorm_decoder_depth"):
        Decoder(dim=16, depth=2, deepnorm=True, deepnorm_decoder_depth=2)


def test_deepnorm_initialisation_follows_the_attention_shapes():
    # grouped-query attention: keys and values are narrower than the queries
    torch.manual_seed(0)
    dim, depth = 64, 2
    stack = Decoder(dim=dim, depth=depth, heads=4, attn_dim_head=32, attn_kv_heads=2, deepnorm=True)
    beta = (8 * depth) ** -0.25
    attention = stack.blocks[0].branch
    width = attention.shapes.k_width
    assert width == 2 * 32
    keys, values = attention.proj.to_kv.weight[:width], attention.proj.to_kv.weight[width:]
    assert keys.std().item() == pytest.approx(xavier_std(width, dim, 1.0), rel=0.05)
    assert values.std().item() == pytest.approx(xavier_std(width, dim, beta), rel=0.05)
