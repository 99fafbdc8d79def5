"""Query-key normalisation: bounded similarities, the learned scale, groups, the dim scale and
the legacy spelling."""

from __future__ import annotations

import math

import pytest
import torch

from x_transformers import Decoder, Encoder
from x_transformers.attention import Attention
from x_transformers.attention.qk_norm import GroupedL2Norm
from x_transformers.options import AttentionOptions

DIM, HEADS, DIM_HEAD = 16, 2, 8


def attention(**options):
    torch.manual_seed(0)
    return Attention(DIM, HEADS, AttentionOptions(dim_head=DIM_HEAD, qk_norm=True, **options))


def scores_of(attn, x):
    _, inter = attn(x, need_weights=True)
    return inter.pre_softmax_scores


@pytest.mark.parametrize("groups, scale", [(1, 10.0), (2, 10.0), (4, 3.0), (8, 1.5)])
def test_similarities_are_bounded_by_groups_times_scale(groups, scale):
    attn = attention(qk_norm_groups=groups, qk_norm_scale=scale)
    x = torch.randn(3, 11, DIM) * 5
    scores = scores_of(attn, x)
    assert scores.abs().max() <= groups * scale * (1 + 1e-6)
    # identical query and key projections make every query parallel to its own key, per group:
    # the diagonal reaches the bound exactly
    with torch.no_grad():
        attn.proj.to_q.weight.copy_(attn.proj.to_kv.weight[: HEADS * DIM_HEAD])
    diagonal = scores_of(attn, x).diagonal(dim1=-2, dim2=-1)
    torch.testing.assert_close(diagonal, torch.full_like(diagonal, groups * scale))


def test_the_scale_is_learned_by_default_and_can_be_fixed():
    learned = attention(qk_norm_scale=7.0)
    assert isinstance(learned.query_norm.scale, torch.nn.Parameter)
    assert learned.query_norm.scale.item() == 7.0
    assert learned.key_norm.scale is None  # the scale multiplies the queries only
    fixed = attention(qk_norm_scale=7.0, qk_norm_learned_scale=False)
    assert fixed.query_norm.scale == 7.0
    assert not any("scale" in name for name, _ in fixed.named_parameters())


def test_dim_scale_adds_a_learned_gain_to_queries_and_keys():
    attn = attention(qk_norm_dim_scale=True)
    assert attn.query_norm.gain.shape == (DIM_HEAD,) and attn.key_norm.gain.shape == (DIM_HEAD,)
    x = torch.randn(2, 5, DIM)
    before = scores_of(attn, x)
    with torch.no_grad():
        attn.query_norm.gain.fill_(2.0)
    torch.testing.assert_close(scores_of(attn, x), 2 * before)


def test_grouped_l2_norm_normalises_each_group():
    norm = GroupedL2Norm(8, groups=4)
    out = norm(torch.randn(3, 8)).unflatten(-1, (4, 2))
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3, 4))


def test_legacy_spelling_sets_the_papers_initial_scale():
    with pytest.warns(DeprecationWarning) as caught:
        stack = Decoder(
            dim=DIM, depth=1, heads=HEADS, use_qk_norm_attn=True, qk_norm_attn_seq_len=64
        )
    messages = " ".join(str(w.message) for w in caught)
    assert "'use_qk_norm_attn'" in messages and "'qk_norm_attn_seq_len'" in messages
    query_norm = stack.blocks[0].branch.query_norm
    assert query_norm.scale.item() == pytest.approx(math.log2(64**2 - 64))
    assert stack.blocks[0].branch.attend.scale == 1.0


def test_qk_norm_runs_on_the_fused_path():
    attn = Encoder(dim=DIM, depth=1, heads=HEADS, attn_qk_norm=True, attn_flash=True)
    assert attn.blocks[0].branch.attend.fused


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"attn_qk_norm_groups": 2}, "'attn_qk_norm_groups=2' has no effect without"),
        ({"attn_qk_norm_scale": 3.0}, "'attn_qk_norm_scale=3.0' has no effect without"),
        ({"attn_qk_norm_dim_scale": True}, "'attn_qk_norm_dim_scale=True' has no effect"),
        ({"attn_qk_norm": True, "attn_qk_norm_groups": 3}, "positive divisor of .* 8, got 3"),
        ({"attn_qk_norm": True, "attn_qk_norm_scale": 0.0}, "must be > 0"),
    ],
)
def test_qk_norm_keywords_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Decoder(dim=DIM, depth=1, heads=HEADS, attn_dim_head=DIM_HEAD, **kwargs)
