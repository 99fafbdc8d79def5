"""Transforms of the attention matrix: top-k sparsity and talking heads."""

from __future__ import annotations

import pytest
import torch

from x_transformers import Decoder, Encoder
from x_transformers.attention import Attention
from x_transformers.attention.sparse_topk import SparseTopK
from x_transformers.options import AttentionOptions

DIM, HEADS, DIM_HEAD = 16, 3, 4


def attention(causal=False, **options):
    torch.manual_seed(0)
    return Attention(DIM, HEADS, AttentionOptions(dim_head=DIM_HEAD, **options), causal=causal)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_top_k_leaves_exactly_k_weights_per_query(k):
    attn = attention(sparse_topk=k)
    _, inter = attn(torch.randn(2, 9, DIM), need_weights=True)
    nonzero = (inter.post_softmax_attn > 0).sum(-1)
    assert (nonzero == k).all()


def test_top_k_with_causal_mask_keeps_min_k_and_visible():
    attn = attention(causal=True, sparse_topk=3)
    _, inter = attn(torch.randn(2, 7, DIM), need_weights=True)
    nonzero = (inter.post_softmax_attn > 0).sum(-1)  # (b, h, i)
    expected = torch.arange(1, 8).clamp(max=3).expand_as(nonzero)
    assert torch.equal(nonzero, expected)


def test_top_k_keeps_the_largest_scores_and_renormalises():
    scores = torch.tensor([[0.5, 3.0, -1.0, 2.0, 2.5]])
    kept = SparseTopK(2)(scores).softmax(-1)
    expected = torch.zeros(1, 5)
    expected[0, [1, 4]] = torch.tensor([3.0, 2.5]).softmax(-1)
    torch.testing.assert_close(kept, expected)
    # ties never keep more than k
    assert (SparseTopK(2)(torch.zeros(1, 6)).softmax(-1) > 0).sum() == 2
    # k at least the number of keys changes nothing
    assert torch.equal(SparseTopK(5)(scores), scores)


def test_top_k_must_be_positive():
    with pytest.raises(ValueError, match="'attn_sparse_topk' must be >= 1, got 0"):
        Decoder(dim=DIM, depth=1, heads=HEADS, attn_sparse_topk=0)


def test_talking_heads_with_identity_mixing_equals_plain_attention():
    talking = attention(causal=True, talking_heads=True)
    plain = attention(causal=True)
    missing, unexpected = talking.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all("attend" in name for name in missing)
    x = torch.randn(2, 6, DIM)
    mask = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    mask[0, ..., 4:] = False
    torch.testing.assert_close(talking(x, mask=mask)[0], plain(x, mask=mask)[0])


def test_talking_heads_mix_logits_before_and_weights_after_the_softmax():
    attn = attention(talking_heads=True)
    with torch.no_grad():
        attn.attend.stages.at("scores")[0].weight.copy_(torch.randn(HEADS, HEADS))
        attn.attend.stages.at("weights")[0].weight.copy_(torch.randn(HEADS, HEADS))
    x = torch.randn(2, 5, DIM)
    q, k, v = [
        t.unflatten(-1, (HEADS, DIM_HEAD)).transpose(1, 2)  # (b, h, n, d)
        for t in (x @ attn.proj.to_q.weight.t(), *(x @ attn.proj.to_kv.weight.t()).chunk(2, dim=-1))
    ]
    logits = q @ k.transpose(-1, -2) / DIM_HEAD**0.5
    pre, post = (
        attn.attend.stages.at("scores")[0].weight,
        attn.attend.stages.at("weights")[0].weight,
    )

    def mix(matrix, x):  # out[:, g] = sum_h matrix[g, h] * x[:, h], written as loops
        return torch.stack(
            [sum(matrix[g, h] * x[:, h] for h in range(HEADS)) for g in range(HEADS)], dim=1
        )

    out = mix(post, mix(pre, logits).softmax(-1)) @ v
    expected = out.transpose(1, 2).flatten(-2) @ attn.proj.to_out.weight.t()
    torch.testing.assert_close(attn(x)[0], expected, rtol=1e-5, atol=1e-5)


def test_legacy_talking_heads_spelling():
    with pytest.warns(DeprecationWarning, match="'talking_heads'"):
        stack = Encoder(dim=DIM, depth=1, heads=HEADS, talking_heads=True)
    attend = stack.blocks[0].branch.attend
    assert [s.point for s in attend.stages.stages] == ["scores", "weights"]
