"""Wrapper-level positions and embedding norms: learned / sinusoidal / no absolute positions,
``l2norm_embed`` with its small initialisation, ``post_emb_norm``."""

from __future__ import annotations

import math

import pytest
import torch

from x_transformers import Decoder, Encoder, TransformerWrapper
from x_transformers.options import parse_wrapper_kwargs
from x_transformers.positional import (
    AbsolutePositionalEmbedding,
    SinusoidalPositionalEmbedding,
    sinusoids,
)
from x_transformers.wrappers.stem import SequenceStem


def stem(dim=16, **kwargs) -> SequenceStem:
    torch.manual_seed(0)
    return SequenceStem(dim, dim, 8, parse_wrapper_kwargs(kwargs, "test")).eval()


def test_sinusoids_match_the_formula():
    positions = torch.tensor([0.0, 1.0, 7.0, 1000.0], dtype=torch.float64)
    table = sinusoids(positions, 6)
    for row, p in enumerate(positions.tolist()):
        for k in range(3):
            angle = p / 10000 ** (k / 3)
            assert table[row, k].item() == pytest.approx(math.sin(angle), abs=1e-12)
            assert table[row, 3 + k].item() == pytest.approx(math.cos(angle), abs=1e-12)
    assert sinusoids(positions, 5).shape == (4, 5)  # odd widths drop the last cosine


def test_sinusoidal_embedding_is_scaled_and_offset():
    emb = SinusoidalPositionalEmbedding(16)
    full = emb(10)
    torch.testing.assert_close(emb(4, offset=6), full[6:])
    torch.testing.assert_close(full, sinusoids(torch.arange(10.0), 16) * 16**-0.5)
    per_row = emb(4, offset=torch.tensor([[6], [2]]))  # (b, 1) starts of left-padded rows
    assert per_row.shape == (2, 4, 16)
    torch.testing.assert_close(per_row[0], full[6:])
    torch.testing.assert_close(per_row[1], full[2:6])


def test_absolute_positions_by_keyword():
    assert isinstance(stem().pos_emb, AbsolutePositionalEmbedding)
    assert isinstance(stem(sinusoidal_pos_emb=True).pos_emb, SinusoidalPositionalEmbedding)
    assert stem(use_abs_pos_emb=False).pos_emb is None
    with pytest.raises(ValueError, match="sinusoidal_pos_emb.*use_abs_pos_emb=False"):
        stem(use_abs_pos_emb=False, sinusoidal_pos_emb=True)


def test_no_absolute_positions_means_positions_do_not_reach_the_embedding():
    s = stem(use_abs_pos_emb=False)
    embedded = torch.randn(1, 5, 16)
    out, _ = s(embedded)
    torch.testing.assert_close(out, embedded)


def test_absolute_positions_follow_the_offset():
    s = stem()
    embedded = torch.zeros(1, 3, 16)
    out, _ = s(embedded, offset=4)
    torch.testing.assert_close(out[0], s.pos_emb.emb.weight[4:7])


def test_l2norm_embed_normalises_tokens_and_positions():
    s = stem(l2norm_embed=True)
    embedded = torch.randn(2, 5, 16) * 3
    out, _ = s(embedded)
    expected = embedded / embedded.norm(dim=-1, keepdim=True)
    positions = s.pos_emb(5)
    expected = expected + positions / positions.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(out, expected)
    without_positions, _ = stem(l2norm_embed=True, use_abs_pos_emb=False)(embedded)
    torch.testing.assert_close(without_positions.norm(dim=-1), torch.ones(2, 5))


def test_l2norm_embed_uses_the_small_initialisation():
    torch.manual_seed(0)
    small = TransformerWrapper(
        num_tokens=500,
        max_seq_len=64,
        l2norm_embed=True,
        attn_layers=Decoder(dim=64, depth=1, heads=2),
    )
    plain = TransformerWrapper(
        num_tokens=500, max_seq_len=64, attn_layers=Decoder(dim=64, depth=1, heads=2)
    )
    assert small.token_emb.weight.std().item() == pytest.approx(1e-5, rel=0.1)
    assert small.stem.pos_emb.emb.weight.std().item() == pytest.approx(1e-5, rel=0.1)
    assert plain.token_emb.weight.std().item() == pytest.approx(0.02, rel=0.1)
    out = small(torch.randint(0, 500, (1, 10)))
    assert torch.isfinite(out).all()


def test_post_emb_norm_is_a_layernorm_of_the_sum():
    s = stem(post_emb_norm=True)
    embedded = torch.randn(2, 5, 16) * 4 + 1
    out, _ = s(embedded)
    summed = embedded + s.pos_emb(5)
    expected = torch.nn.functional.layer_norm(summed, (16,))
    torch.testing.assert_close(out, expected)
    assert stem().post_emb_norm is None


def test_post_emb_norm_gets_gradients_in_a_model():
    torch.manual_seed(0)
    model = TransformerWrapper(
        num_tokens=20, max_seq_len=8, post_emb_norm=True, attn_layers=Encoder(dim=16, depth=1)
    )
    model(torch.randint(0, 20, (1, 8))).pow(2).mean().backward()
    assert model.stem.post_emb_norm.weight.grad.abs().sum() > 0
