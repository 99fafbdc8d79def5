"""Position keywords: routed to one provider, and refused clearly when they would
be ignored or cannot be combined."""

from __future__ import annotations

import dataclasses

import pytest

from x_transformers import CrossAttender, Decoder, Encoder
from x_transformers.options import WrapperOptions
from x_transformers.positional import AlibiPositionalBias, RotaryEmbedding, T5RelativePositionBias

WRAPPER_FIELDS = ("use_abs_pos_emb", "sinusoidal_pos_emb", "l2norm_embed", "post_emb_norm")


def test_absolute_position_keywords_belong_to_the_wrapper():
    assert set(WRAPPER_FIELDS) <= {f.name for f in dataclasses.fields(WrapperOptions)}


def test_rotary_xpos_alone_turns_rotary_on():
    rotary = Decoder(dim=16, depth=1, heads=2, rotary_xpos=True).positions.rotary
    assert isinstance(rotary, RotaryEmbedding) and rotary.xpos_scale_base == 512
    plain = Decoder(dim=16, depth=1, heads=2, rotary_pos_emb=True).positions.rotary
    assert plain.xpos_scale_base is None and plain.dim == 64  # the whole (default) head


def test_rotary_dimension_defaults_to_the_head_and_accepts_partial():
    layers = Encoder(dim=16, depth=1, heads=2, attn_dim_head=12, rotary_pos_emb=True)
    assert layers.positions.rotary.dim == 12
    layers = Encoder(dim=16, depth=1, heads=2, attn_dim_head=12, rotary_pos_emb=True,
                     rotary_emb_dim=6)  # fmt: skip
    assert layers.positions.rotary.dim == 6


@pytest.mark.parametrize("value", [3, 0, 14])
def test_bad_rotary_dimension_is_refused(value):
    with pytest.raises(ValueError, match=rf"'rotary_emb_dim'.*got {value}"):
        Encoder(dim=16, depth=1, heads=2, attn_dim_head=12, rotary_pos_emb=True,
                rotary_emb_dim=value)  # fmt: skip


@pytest.mark.parametrize(
    "keyword, value, parent",
    [
        ("rotary_emb_dim", 8, "rotary_pos_emb"),
        ("rotary_theta", 500.0, "rotary_pos_emb"),
        ("rotary_xpos_scale_base", 64, "rotary_xpos"),
        ("rel_pos_num_buckets", 16, "rel_pos_bias"),
        ("rel_pos_max_distance", 64, "rel_pos_bias"),
        ("dynamic_pos_bias_log_distance", True, "dynamic_pos_bias"),
        ("alibi_num_heads", 2, "alibi_pos_bias"),
    ],
)
def test_sub_options_without_their_scheme_are_refused(keyword, value, parent):
    with pytest.raises(ValueError, match=rf"'{keyword}'.*'{parent}=True'"):
        Decoder(dim=16, depth=1, heads=2, **{keyword: value})


def test_two_score_biases_are_refused_naming_both():
    with pytest.raises(ValueError, match="'rel_pos_bias' and 'alibi_pos_bias'"):
        Decoder(dim=16, depth=1, heads=2, rel_pos_bias=True, alibi_pos_bias=True)


def test_cross_attender_refuses_positions():
    with pytest.raises(ValueError, match="'rotary_pos_emb'.*CrossAttender"):
        CrossAttender(dim=16, depth=1, heads=2, rotary_pos_emb=True)


def test_non_positive_scales_are_refused():
    with pytest.raises(ValueError, match="rotary_xpos_scale_base"):
        Decoder(dim=16, depth=1, heads=2, rotary_xpos=True, rotary_xpos_scale_base=0)
    with pytest.raises(ValueError, match="rotary_theta"):
        Decoder(dim=16, depth=1, heads=2, rotary_pos_emb=True, rotary_theta=-1.0)


def test_schemes_compose_in_one_provider():
    provider = Decoder(
        dim=16,
        depth=2,
        heads=4,
        rotary_pos_emb=True,
        alibi_pos_bias=True,
        position_infused_attn=True,
    ).positions
    assert isinstance(provider.rotary, RotaryEmbedding)
    assert isinstance(provider.score_bias, AlibiPositionalBias)
    assert provider.infusion is not None
    t5 = Encoder(dim=16, depth=2, heads=4, rel_pos_bias=True).positions
    assert isinstance(t5.score_bias, T5RelativePositionBias) and t5.rotary is None


def test_unknown_position_keyword_suggests_the_right_one():
    with pytest.raises(TypeError, match="did you mean 'rotary_pos_emb'"):
        Decoder(dim=16, depth=1, heads=2, rotary_pos_embs=True)
