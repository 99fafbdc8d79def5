"""Relative schemes are relative: with the same contents, the attention scores between positions
(i, j) equal those between (i + s, j + s), the shift given as the provider's explicit offset.
Absolute schemes (position-infused attention) are the control that this test can fail."""

from __future__ import annotations

import pytest
import torch

from x_transformers import Decoder, Encoder
from x_transformers.attention import Attention

RELATIVE = {
    "rotary": {"rotary_pos_emb": True},
    "rotary_partial": {"rotary_pos_emb": True, "rotary_emb_dim": 4},
    "xpos": {"rotary_xpos": True, "rotary_xpos_scale_base": 16},
    "t5": {"rel_pos_bias": True, "rel_pos_num_buckets": 8, "rel_pos_max_distance": 8},
    "dynamic": {"dynamic_pos_bias": True},
    "dynamic_log": {"dynamic_pos_bias": True, "dynamic_pos_bias_log_distance": True},
    "alibi": {"alibi_pos_bias": True},
    "alibi_partial": {"alibi_pos_bias": True, "alibi_num_heads": 2},
    "rotary_and_t5": {"rotary_pos_emb": True, "rel_pos_bias": True},
}
N, DIM = 9, 32


def build(stack, **kwargs):
    torch.manual_seed(0)
    layers = stack(dim=DIM, depth=1, heads=4, attn_dim_head=8, **kwargs).double()
    attention = next(m for m in layers.modules() if isinstance(m, Attention))
    return layers, attention


def scores_at(layers, attention, x, offset):
    positions = layers.positions(N, N, offset=offset, device=x.device, dtype=x.dtype)
    out, intermediates = attention(x, positions=positions, need_weights=True)
    return intermediates.pre_softmax_scores, out


@pytest.mark.parametrize("stack", [Encoder, Decoder], ids=["encoder", "decoder"])
@pytest.mark.parametrize("scheme", list(RELATIVE), ids=list(RELATIVE))
@pytest.mark.parametrize("shift", [3, 1000])
def test_scores_are_shift_invariant(stack, scheme, shift):
    layers, attention = build(stack, **RELATIVE[scheme])
    x = torch.randn(2, N, DIM, dtype=torch.float64)
    scores, out = scores_at(layers, attention, x, 0)
    shifted_scores, shifted_out = scores_at(layers, attention, x, shift)
    torch.testing.assert_close(shifted_scores, scores)
    torch.testing.assert_close(shifted_out, out)
    # and the scheme does something: positions change the scores
    plain = attention(x, need_weights=True)[1].pre_softmax_scores
    assert not torch.allclose(plain, scores)


def test_tensor_offset_equals_int_offset():
    layers, attention = build(Decoder, rotary_xpos=True, alibi_pos_bias=True)
    x = torch.randn(1, N, DIM, dtype=torch.float64)
    as_int = layers.positions(N, N, offset=5, device=x.device, dtype=x.dtype)
    as_tensor = layers.positions(N, N, offset=torch.tensor(5), device=x.device, dtype=x.dtype)
    torch.testing.assert_close(
        attention(x, positions=as_tensor)[0], attention(x, positions=as_int)[0]
    )


def test_absolute_scheme_is_not_shift_invariant():
    """The control: position-infused attention adds absolute sinusoids, so a shift changes it."""
    layers, attention = build(Encoder, position_infused_attn=True)
    x = torch.randn(1, N, DIM, dtype=torch.float64)
    scores, _ = scores_at(layers, attention, x, 0)
    shifted, _ = scores_at(layers, attention, x, 3)
    assert not torch.allclose(scores, shifted)


def test_infusion_reaches_queries_and_keys_but_not_values():
    layers, attention = build(Encoder, position_infused_attn=True)
    x = torch.randn(1, N, DIM, dtype=torch.float64)
    positions = layers.positions(N, device=x.device, dtype=x.dtype)
    sinusoids = positions.infusion.query
    w_q = attention.proj.to_q.weight
    w_k, w_v = attention.proj.to_kv.weight.split(
        (attention.shapes.k_width, attention.shapes.v_width)
    )
    kv = attention.proj.keys_values(*positions.infuse(x, x)[1:], x)
    torch.testing.assert_close(kv[..., : w_k.shape[0]], (x + sinusoids) @ w_k.t())
    torch.testing.assert_close(kv[..., w_k.shape[0] :], x @ w_v.t())
    torch.testing.assert_close(positions.infuse(x, x)[0] @ w_q.t(), (x + sinusoids) @ w_q.t())


def test_xl_layout_matches_the_full_sequence():
    """Queries after m memory positions (offset m, keys 0..m+n-1) see the same rotations and bias
    as the last rows of one pass over the m + n positions."""
    layers, _ = build(Decoder, rotary_xpos=True, rel_pos_bias=True, position_infused_attn=True)
    m, n = 6, 4
    q = torch.randn(1, 4, n, 8, dtype=torch.float64)
    k = torch.randn(1, 4, m + n, 8, dtype=torch.float64)
    full = layers.positions(m + n, device=q.device, dtype=q.dtype)
    after = layers.positions(n, num_keys=m + n, offset=m, device=q.device, dtype=q.dtype)
    q_full = torch.cat((torch.zeros(1, 4, m, 8, dtype=q.dtype), q), dim=2)
    torch.testing.assert_close(after.rotate(q, k)[0], full.rotate(q_full, k)[0][:, :, m:])
    torch.testing.assert_close(after.rotate(q, k)[1], full.rotate(q_full, k)[1])
    torch.testing.assert_close(after.bias, full.bias[:, m:])
    torch.testing.assert_close(after.infusion.query, full.infusion.query[m:])


def test_positions_are_computed_once_per_forward_and_never_reach_cross_attention():
    torch.manual_seed(0)
    layers = Decoder(dim=DIM, depth=3, heads=4, cross_attend=True, rotary_pos_emb=True,
                     alibi_pos_bias=True)  # fmt: skip
    calls, seen = [], {}
    layers.positions.register_forward_hook(lambda *args: calls.append(1))
    for name, module in layers.named_modules():
        if isinstance(module, Attention):
            module.register_forward_pre_hook(
                lambda mod, args, kwargs, name=name: seen.__setitem__(
                    name, (kwargs.get("context") is not None, kwargs.get("positions"))
                ),
                with_kwargs=True,
            )
    layers(torch.randn(2, 5, DIM), context=torch.randn(2, 3, DIM))
    assert len(calls) == 1
    assert len(seen) == 6
    for is_cross, positions in seen.values():
        assert (positions is None) == is_cross


def test_no_scheme_builds_no_provider():
    assert Decoder(dim=DIM, depth=1, heads=2).positions is None
