"""The options layer: routing, legacy spellings, unknown keywords and type checks."""

from __future__ import annotations

import math

import pytest

from x_transformers import Decoder, Encoder, TransformerWrapper, XTransformer
from x_transformers.options import (
    LEGACY_ALIASES,
    layer_keyword_names,
    parse_layer_kwargs,
)


def parse(cross_attend=False, **kwargs):
    return parse_layer_kwargs(
        dim=16,
        depth=1,
        heads=2,
        causal=False,
        cross_attend=cross_attend,
        only_cross=False,
        kwargs=kwargs,
        where="Test",
    )


@pytest.mark.parametrize(
    "typo, suggestion",
    [
        ("rotary_pos_embb", "rotary_pos_emb"),
        ("attn_dim_heads", "attn_dim_head"),
        ("ff_multt", "ff_mult"),
        ("pre_nrom", "pre_norm"),
    ],
)
def test_unknown_layer_keyword_suggests_the_closest(typo, suggestion):
    with pytest.raises(TypeError, match=f"'{typo}'.*did you mean '{suggestion}'"):
        Decoder(dim=16, depth=1, **{typo: True})


def test_unknown_wrapper_keyword_suggests_the_closest():
    with pytest.raises(TypeError, match="did you mean 'emb_dropout'"):
        TransformerWrapper(
            num_tokens=8, max_seq_len=4, attn_layers=Decoder(dim=16, depth=1), emb_dropuot=0.1
        )


def test_unknown_xtransformer_keyword_keeps_its_side_prefix():
    with pytest.raises(TypeError, match="did you mean 'enc_depth'"):
        XTransformer(
            dim=16,
            enc_num_tokens=8,
            enc_dpeth=1,
            enc_max_seq_len=4,
            dec_num_tokens=8,
            dec_depth=1,
            dec_max_seq_len=4,
        )


def test_prefixes_route_to_their_groups():
    config = parse(
        cross_attend=True, attn_dim_head=12, cross_attn_dim_head=20, ff_mult=2, attn_dropout=0.1
    )
    assert config.attention.dim_head == 12
    assert config.cross_attention.dim_head == 20  # cross_attn_ overrides attn_ for cross-attention
    assert config.cross_attention.dropout == 0.1  # attn_ also reaches cross-attention
    assert config.feedforward.mult == 2


@pytest.mark.parametrize("old, new", [(old, new) for old, (new, _) in LEGACY_ALIASES.items()])
def test_legacy_spellings_are_known(old, new):
    assert old in layer_keyword_names()
    assert new in layer_keyword_names()


def test_legacy_dim_head_maps_with_a_warning():
    with pytest.warns(DeprecationWarning, match="'dim_head'.*'attn_dim_head'"):
        config = parse(dim_head=32)
    assert config.attention.dim_head == 32


def test_qk_norm_seq_len_becomes_the_papers_initial_scale():
    with pytest.warns(DeprecationWarning):
        config = parse(use_qk_norm_attn=True, qk_norm_attn_seq_len=1024)
    assert config.attention.qk_norm_scale == pytest.approx(math.log2(1024**2 - 1024))


@pytest.mark.parametrize("bad", [{"attn_dim_head": "64"}, {"pre_norm": 1.5}, {"ff_mult": True}])
def test_type_mismatch_is_a_type_error(bad):
    with pytest.raises(TypeError, match=next(iter(bad))):
        Encoder(dim=16, depth=1, **bad)


@pytest.mark.parametrize("name, value", [("dim", 0), ("depth", -1), ("heads", 2.5)])
def test_sizes_must_be_positive_ints(name, value):
    kwargs = {"dim": 16, "depth": 1, "heads": 2, name: value}
    with pytest.raises(ValueError, match=name):
        Encoder(**kwargs)


def test_stacks_refuse_to_change_their_nature():
    with pytest.raises(TypeError, match="Encoder is never causal"):
        Encoder(dim=16, depth=1, causal=True)
    with pytest.raises(TypeError, match="Decoder is always causal"):
        Decoder(dim=16, depth=1, causal=False)
