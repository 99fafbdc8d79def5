"""Head layouts: head dimension, multi-query, grouped-query and collaborative heads."""

from __future__ import annotations

import pytest
import torch

from x_transformers import Decoder
from x_transformers.attention import Attention
from x_transformers.options import AttentionOptions

DIM, HEADS, DIM_HEAD = 16, 4, 6


def attention(causal=False, **options):
    torch.manual_seed(0)
    return Attention(DIM, HEADS, AttentionOptions(dim_head=DIM_HEAD, **options), causal=causal)


def test_dim_head_sets_the_projection_widths():
    attn = attention()
    assert attn.proj.to_q.weight.shape == (HEADS * DIM_HEAD, DIM)
    assert attn.proj.to_kv.weight.shape == (2 * HEADS * DIM_HEAD, DIM)
    assert attn.proj.to_out.weight.shape == (DIM, HEADS * DIM_HEAD)


@pytest.mark.parametrize(
    "options, kv_heads",
    [({"one_kv_head": True}, 1), ({"kv_heads": 2}, 2), ({"kv_heads": 1}, 1), ({}, HEADS)],
)
def test_kv_heads_shrink_the_key_value_projection(options, kv_heads):
    attn = attention(**options)
    assert attn.proj.to_q.weight.shape == (HEADS * DIM_HEAD, DIM)  # queries keep every head
    assert attn.proj.to_kv.weight.shape == (2 * kv_heads * DIM_HEAD, DIM)
    assert attn.shapes.kv_heads == kv_heads


def expand_to_multi_head(grouped: Attention) -> Attention:
    """A plain multi-head attention whose key/value heads are the grouped ones repeated, query
    head h reading key/value head h // group (the enable_gqa convention)."""
    plain = attention()
    kv_heads = grouped.shapes.kv_heads
    k_weight, v_weight = grouped.proj.to_kv.weight.chunk(2)
    repeat = [  # (k * d, dim) -> (h * d, dim)
        w.unflatten(0, (kv_heads, DIM_HEAD)).repeat_interleave(HEADS // kv_heads, 0).flatten(0, 1)
        for w in (k_weight, v_weight)
    ]
    with torch.no_grad():
        plain.proj.to_q.weight.copy_(grouped.proj.to_q.weight)
        plain.proj.to_kv.weight.copy_(torch.cat(repeat))
        plain.proj.to_out.weight.copy_(grouped.proj.to_out.weight)
    return plain


@pytest.mark.parametrize("options", [{"one_kv_head": True}, {"kv_heads": 2}])
@pytest.mark.parametrize("causal", [False, True])
def test_grouped_heads_equal_multi_head_with_repeated_key_values(options, causal):
    grouped = attention(causal=causal, **options)
    plain = expand_to_multi_head(grouped)
    plain.attend.causal = causal
    x = torch.randn(2, 7, DIM)
    mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    mask[1, ..., 4:] = False
    for need_weights in (False, True):  # fused (enable_gqa) and explicit (grouped einsum)
        out, _ = grouped(x, mask=mask, need_weights=need_weights)
        expected, _ = plain(x, mask=mask, need_weights=need_weights)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_collaborative_heads_follow_the_paper_formula():
    attn = attention(collab_heads=True, collab_compression=0.5)
    shared = int(0.5 * HEADS * DIM_HEAD)
    assert attn.proj.to_q.weight.shape == (shared, DIM)  # one shared query projection
    assert attn.proj.to_kv.weight.shape == (shared + HEADS * DIM_HEAD, DIM)
    x = torch.randn(2, 5, DIM)
    q = x @ attn.proj.to_q.weight.t()  # (b, n, D)
    k = x @ attn.proj.to_kv.weight[:shared].t()
    v = (x @ attn.proj.to_kv.weight[shared:].t()).unflatten(-1, (HEADS, DIM_HEAD))  # (b, n, h, d)
    mixing = attn.collab_heads.mixing.squeeze(1)  # (h, D)
    heads = []
    for h in range(HEADS):
        scores = (q * mixing[h]) @ k.transpose(1, 2) / shared**0.5
        heads.append(scores.softmax(-1) @ v[:, :, h])
    expected = torch.cat(heads, dim=-1) @ attn.proj.to_out.weight.t()
    for need_weights in (False, True):
        out, _ = attn(x, need_weights=need_weights)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_collaborative_heads_compose_with_grouped_values():
    attn = attention(collab_heads=True, kv_heads=2)
    assert attn.proj.to_kv.weight.shape[0] == attn.shapes.dim_qk + 2 * DIM_HEAD
    out, _ = attn(torch.randn(1, 3, DIM))
    assert out.shape == (1, 3, DIM)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"attn_one_kv_head": True, "attn_kv_heads": 2}, "'attn_one_kv_head=True'.*kv_heads=2"),
        ({"attn_kv_heads": 3}, "'attn_kv_heads' must be a positive divisor of heads=4, got 3"),
        ({"attn_kv_heads": 0}, "positive divisor"),
        ({"attn_collab_compression": 0.5}, "'attn_collab_compression=0.5' has no effect"),
        ({"attn_collab_heads": True, "attn_collab_compression": 0.0}, "must be > 0"),
        ({"attn_dim_head": 0}, "'attn_dim_head' must be >= 1"),
    ],
)
def test_head_keywords_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Decoder(dim=DIM, depth=1, heads=HEADS, **kwargs)


@pytest.mark.parametrize(
    "options", [{}, {"kv_heads": 2}, {"one_kv_head": True}, {"qkv_bias": True}]
)
def test_fused_head_split_equals_projecting_then_splitting(options):
    """``project_heads`` takes q / k / v heads from the fused projection with one reshape; it
    must give what projecting and splitting each of them gives (also for grouped heads)."""
    from x_transformers.attention.heads import split_heads

    attn = attention(**options)
    assert attn.proj.fused_heads is not None  # the one-reshape path is the one under test
    x = torch.randn(2, 5, 16)
    fast = attn.proj.project_heads(x, x, x, attn.shapes)
    reference = split_heads(*attn.proj.project(x, x, x), attn.shapes)
    for got, expected in zip(fast, reference, strict=True):
        assert torch.equal(got, expected)
