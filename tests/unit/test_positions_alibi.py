"""ALiBi slopes (the paper's geometric sequence), the causal and bidirectional biases, partial
heads and the legacy spelling."""

from __future__ import annotations

import pytest
import torch

from x_transformers import Decoder, Encoder
from x_transformers.positional import AlibiPositionalBias, PositionSpan, alibi_slopes

CPU = torch.device("cpu")


@pytest.mark.parametrize("heads", [1, 2, 4, 8, 16])
def test_slopes_of_power_of_two_heads_are_the_geometric_sequence(heads):
    ratio = 2 ** (-8 / heads)
    assert alibi_slopes(heads) == pytest.approx([ratio ** (k + 1) for k in range(heads)])


def test_slopes_of_other_head_counts():
    # 8 heads: 2^-1 .. 2^-8
    assert alibi_slopes(8) == pytest.approx([2.0**-k for k in range(1, 9)])
    # 6 heads: the 4-head slopes, then every other slope of the 8-head sequence
    assert alibi_slopes(6) == pytest.approx([2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3])
    # 12 heads: the 8-head slopes, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5 (from the 16-head ones)
    expected = [2.0**-k for k in range(1, 9)] + [2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5]
    assert alibi_slopes(12) == pytest.approx(expected)
    assert alibi_slopes(3) == pytest.approx([2**-4, 2**-8, 2**-2])
    with pytest.raises(ValueError):
        alibi_slopes(0)


def test_causal_bias_is_minus_slope_times_distance():
    module = AlibiPositionalBias(4, causal=True)
    bias = module(PositionSpan.for_lengths(5), CPU, torch.float64)
    slopes = torch.tensor(alibi_slopes(4), dtype=torch.float64)
    i, j = torch.arange(5)[:, None], torch.arange(5)[None, :]
    expected = -slopes[:, None, None] * (i - j).abs()
    torch.testing.assert_close(bias, expected)
    # with a cache: one query at position 9 against keys 0..9
    cached = module(PositionSpan.for_lengths(1, offset=9), CPU, torch.float64)
    torch.testing.assert_close(cached[:, 0], -slopes[:, None] * (9 - torch.arange(10)))


def test_bidirectional_bias_uses_reversed_slopes_ahead():
    module = AlibiPositionalBias(4, causal=False)
    bias = module(PositionSpan.for_lengths(6), CPU, torch.float64)
    backward = torch.tensor(alibi_slopes(4), dtype=torch.float64)
    forward = backward.flip(0)
    for i in range(6):
        for j in range(6):
            slope = backward if j <= i else forward
            torch.testing.assert_close(bias[:, i, j], -slope * abs(i - j))
    # non-symmetric: every head but the middle ones can tell left from right
    assert not torch.allclose(bias[0, 3, 2], bias[0, 3, 4])


def test_only_the_first_alibi_num_heads_get_a_bias():
    module = AlibiPositionalBias(8, causal=True, num_alibi_heads=4)
    bias = module(PositionSpan.for_lengths(5), CPU, torch.float32)
    assert bias.shape == (8, 5, 5)
    assert (bias[4:] == 0).all()
    slopes = torch.tensor(alibi_slopes(4))
    torch.testing.assert_close(bias[:4, 4, 0], -slopes * 4)
    with pytest.raises(ValueError, match="alibi_num_heads"):
        Decoder(dim=16, depth=1, heads=2, alibi_pos_bias=True, alibi_num_heads=3)


def test_legacy_spelling_builds_the_same_bias():
    with pytest.warns(DeprecationWarning, match="alibi_pos_emb"):
        legacy = Decoder(dim=16, depth=1, heads=4, alibi_pos_emb=True, alibi_num_heads=2)
    current = Decoder(dim=16, depth=1, heads=4, alibi_pos_bias=True, alibi_num_heads=2)
    assert legacy.config.positions == current.config.positions
    span = PositionSpan.for_lengths(4)
    torch.testing.assert_close(
        legacy.positions.score_bias(span, CPU, torch.float32),
        current.positions.score_bias(span, CPU, torch.float32),
    )


def test_direction_follows_the_stack():
    assert (
        Encoder(dim=16, depth=1, heads=2, alibi_pos_bias=True).positions.score_bias.causal is False
    )
    assert (
        Decoder(dim=16, depth=1, heads=2, alibi_pos_bias=True).positions.score_bias.causal is True
    )
