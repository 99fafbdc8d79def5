"""Layout plans as plain lists: default, macaron, sandwich, PAR, custom layers, cross-attention."""

from __future__ import annotations

import pytest

from x_transformers import CrossAttender, Decoder, Encoder
from x_transformers.layers.layout import layer_plan


def plan(depth, **kwargs):
    return list(layer_plan(depth, **kwargs))


def test_default_alternates_attention_and_feedforward():
    assert plan(3) == ["a", "f", "a", "f", "a", "f"]
    assert plan(2, cross_attend=True) == ["a", "c", "f", "a", "c", "f"]
    assert plan(2, only_cross=True) == ["c", "f", "c", "f"]


def test_macaron():
    assert plan(2, macaron=True) == ["f", "a", "f", "f", "a", "f"]
    assert plan(1, macaron=True, cross_attend=True) == ["f", "a", "c", "f"]
    assert plan(1, macaron=True, only_cross=True) == ["f", "c", "f"]


def test_sandwich_depth_6_coef_2_is_the_papers_pattern():
    # s^k (sf)^(n-k) f^k with n = 6, k = 2: "ss sfsfsfsf ff"
    papers_notation = "ss" + "sf" * 4 + "ff"  # s = self-attention, f = feedforward
    assert "".join(plan(6, sandwich_coef=2)) == papers_notation.replace("s", "a")
    assert plan(6, sandwich_coef=2) == list("aaafafafafff")


def test_sandwich_extremes_and_cross_attention():
    assert plan(3, sandwich_coef=3) == list("aaafff")
    assert plan(3, sandwich_coef=1) == list("aafaff")
    assert plan(2, sandwich_coef=1, cross_attend=True) == ["a", "c", "a", "c", "f", "f"]
    assert plan(2, sandwich_coef=1, only_cross=True) == ["c", "c", "f", "f"]


@pytest.mark.parametrize("coef", [0, 4, -1])
def test_sandwich_coef_out_of_range(coef):
    expected = rf"'sandwich_coef' must lie in \[1, depth=3\], got {coef}"
    with pytest.raises(ValueError, match=expected):
        layer_plan(3, sandwich_coef=coef)


def test_par_ratio_plans():
    # 12 blocks, 4 attention blocks (one per 3), spread over the first 8 (two thirds)
    assert plan(6, par_ratio=3) == list("afafafafffff")
    # 12 blocks, 2 attention blocks, at 0 and 4
    assert plan(6, par_ratio=6) == ["a", "f", "f", "f", "a", "f", "f", "f", "f", "f", "f", "f"]
    assert plan(2, par_ratio=2) == ["a", "a", "f", "f"]
    assert plan(2, par_ratio=4) == ["a", "f", "f", "f"]
    assert plan(2, par_ratio=2, cross_attend=True) == ["a", "c", "a", "c", "f", "f"]


@pytest.mark.parametrize("ratio", [1, 13])
def test_par_ratio_out_of_range(ratio):
    with pytest.raises(ValueError, match=r"'par_ratio' must lie in \[2, 2 \* depth = 12\]"):
        layer_plan(6, par_ratio=ratio)


def test_custom_layers_are_used_as_given():
    assert plan(1, custom_layers=("a", "a", "f")) == ["a", "a", "f"]
    assert plan(1, custom_layers=["f", "a", "c", "f"], cross_attend=True) == list("facf")
    assert plan(1, custom_layers=("c", "f", "c"), only_cross=True) == list("cfc")


@pytest.mark.parametrize(
    "custom, kwargs, match",
    [
        (("a", "x"), {}, "non-empty tuple of 'a', 'c', 'f'"),
        ((), {}, "non-empty tuple"),
        (("a", "f"), {"cross_attend": True}, "has no 'c' block"),
        (("a", "c", "f"), {}, "build the stack with cross_attend=True"),
        (("a", "c", "f"), {"only_cross": True}, "CrossAttender has no self-attention"),
    ],
)
def test_invalid_custom_layers(custom, kwargs, match):
    with pytest.raises(ValueError, match=match):
        layer_plan(2, custom_layers=custom, **kwargs)


def test_stacks_use_the_plan():
    encoder = Encoder(dim=8, depth=2, heads=1, macaron=True)
    assert encoder.layer_kinds == ("f", "a", "f", "f", "a", "f")
    decoder = Decoder(dim=8, depth=2, heads=1, cross_attend=True, sandwich_coef=1)
    assert decoder.layer_kinds == ("a", "c", "a", "c", "f", "f")
    assert len(decoder.blocks) == 6
    crosser = CrossAttender(dim=8, depth=2, heads=1, custom_layers=("c", "c", "f"))
    assert crosser.layer_kinds == ("c", "c", "f")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"macaron": True, "sandwich_coef": 2},
        {"macaron": True, "custom_layers": ("a", "f")},
        {"par_ratio": 2, "sandwich_coef": 1},
    ],
)
def test_two_layouts_at_once_are_refused(kwargs):
    with pytest.raises(ValueError) as error:
        Encoder(dim=8, depth=2, **kwargs)
    assert all(f"'{name}'" in str(error.value) for name in kwargs)
