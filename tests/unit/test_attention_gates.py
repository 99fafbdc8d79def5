"""Output gates (value gating, head scale, attention on attention) and persistent memory."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from x_transformers.attention import Attention
from x_transformers.options import AttentionOptions

DIM, HEADS, DIM_HEAD = 16, 2, 4


def attention(causal=False, **options):
    torch.manual_seed(0)
    return Attention(DIM, HEADS, AttentionOptions(dim_head=DIM_HEAD, **options), causal=causal)


def copy_common(target: Attention, source: Attention) -> Attention:
    target.load_state_dict(source.state_dict(), strict=False)
    return target


def attended_values(source: Attention, x):
    """The merged attention output (b, n, h * d) of ``source`` before its output projection."""
    plain = attention()
    with torch.no_grad():
        plain.proj.to_q.weight.copy_(source.proj.to_q.weight)
        plain.proj.to_kv.weight.copy_(source.proj.to_kv.weight)
    plain.proj.to_out = torch.nn.Identity()
    return plain(x)[0]


def test_value_gate_starts_at_sigmoid_one_and_is_computed_from_the_input():
    plain = attention()
    gated = copy_common(attention(gate_values=True), plain)
    x = torch.randn(2, 5, DIM)
    torch.testing.assert_close(gated(x)[0], plain(x)[0] * torch.sigmoid(torch.tensor(1.0)))
    with torch.no_grad():
        value_gate = gated.stages.at("output")[0]
        value_gate.to_gates.weight.normal_()
    gates = torch.sigmoid(x @ value_gate.to_gates.weight.t() + value_gate.to_gates.bias)
    expected = (attended_values(gated, x) * gates) @ gated.proj.to_out.weight.t()
    torch.testing.assert_close(gated(x)[0], expected, rtol=1e-5, atol=1e-5)


def test_head_scale_scales_each_heads_output():
    plain = attention()
    scaled = copy_common(attention(head_scale=True), plain)
    with torch.no_grad():
        head_scale = scaled.stages.at("output")[0]
        head_scale.scale.copy_(torch.tensor([2.0, 0.0]).view(HEADS, 1, 1))
        plain.proj.to_out.weight[:, :DIM_HEAD] *= 2  # head 0 doubled
        plain.proj.to_out.weight[:, DIM_HEAD:] = 0  # head 1 silenced
    x = torch.randn(2, 5, DIM)
    torch.testing.assert_close(scaled(x)[0], plain(x)[0])


def test_attention_on_attention_is_a_glu_over_the_attended_values():
    aoa = attention(on_attn=True)
    assert aoa.proj.to_out.weight.shape == (2 * DIM, HEADS * DIM_HEAD)
    x = torch.randn(2, 5, DIM)
    attended = attended_values(aoa, x)  # (b, n, h * d)
    information, gate = (attended @ aoa.proj.to_out.weight.t() + aoa.proj.to_out.bias).chunk(
        2, dim=-1
    )
    torch.testing.assert_close(aoa(x)[0], information * gate.sigmoid())
    torch.testing.assert_close(
        aoa(x)[0], F.glu(attended @ aoa.proj.to_out.weight.t() + aoa.proj.to_out.bias)
    )


def test_memory_key_values_are_visible_to_every_query():
    attn = attention(causal=True, num_mem_kv=3)
    assert attn.memory_kv.keys.shape == (HEADS, 3, DIM_HEAD)
    x = torch.randn(2, 6, DIM)
    mask = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    mask[1] = False  # the second sequence is all padding: only the memory is left
    out, inter = attn(x, mask=mask, need_weights=True)
    weights = inter.post_softmax_attn  # (b, h, i, 3 + j)
    assert weights.shape == (2, HEADS, 6, 9)
    assert (weights[..., :3] > 0).all()
    causal_zeros = torch.ones(6, 6).triu(1).bool()
    assert (weights[0][..., 3:][..., causal_zeros] == 0).all()
    assert (weights[1, ..., 3:] == 0).all() and torch.isfinite(out).all()
    fused, _ = attn(x, mask=mask)
    torch.testing.assert_close(fused, out, rtol=1e-5, atol=1e-5)


def test_memory_key_values_equal_attention_over_prepended_keys():
    attn = attention(num_mem_kv=2)
    x = torch.randn(1, 4, DIM)
    q = (x @ attn.proj.to_q.weight.t()).unflatten(-1, (HEADS, DIM_HEAD)).transpose(1, 2)
    k, v = (
        (x @ w.t()).unflatten(-1, (HEADS, DIM_HEAD)).transpose(1, 2)
        for w in attn.proj.to_kv.weight.chunk(2)
    )
    k = torch.cat((attn.memory_kv.keys[None], k), dim=2)
    v = torch.cat((attn.memory_kv.values[None], v), dim=2)
    weights = (q @ k.transpose(-1, -2) / math.sqrt(DIM_HEAD)).softmax(-1)
    expected = (weights @ v).transpose(1, 2).flatten(-2) @ attn.proj.to_out.weight.t()
    torch.testing.assert_close(attn(x)[0], expected, rtol=1e-5, atol=1e-5)


def test_memory_keys_are_normalised_with_qk_norm():
    attn = attention(num_mem_kv=4, qk_norm=True, qk_norm_scale=2.0)
    with torch.no_grad():
        attn.memory_kv.keys.mul_(100)
    _, inter = attn(torch.randn(1, 3, DIM) * 10, need_weights=True)
    assert inter.pre_softmax_scores.abs().max() <= 2.0 * (1 + 1e-6)
