"""T5 relative position buckets against a hand-computed table; one bias shared by all layers."""

from __future__ import annotations

import pytest
import torch

from x_transformers import Decoder, Encoder, TransformerWrapper
from x_transformers.positional import PositionSpan, T5RelativePositionBias, t5_relative_bucket

# distance d = query - key. Causal, 8 buckets, max distance 16: exact buckets for d < 4, then
# 4 + floor(log(d / 4) / log(16 / 4) * 4), capped at 7; keys in the future fall in bucket 0.
CAUSAL_TABLE = {
    -5: 0, -1: 0, 0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 4, 6: 5, 7: 5,
    9: 6, 10: 6, 12: 7, 15: 7, 16: 7, 100: 7,
}  # fmt: skip
# Bidirectional, 8 buckets -> 4 per direction, 2 exact, log-spaced up to 16 over 2 buckets:
# 2 + floor(log(|d| / 2) / log(8) * 2), capped at 3; future keys (d < 0) add 4.
BIDIRECTIONAL_TABLE = {
    0: 0, 1: 1, 2: 2, 3: 2, 5: 2, 6: 3, 9: 3, 16: 3, 100: 3,
    -1: 5, -2: 6, -5: 6, -6: 7, -9: 7, -100: 7,
}  # fmt: skip


@pytest.mark.parametrize(
    "table, bidirectional", [(CAUSAL_TABLE, False), (BIDIRECTIONAL_TABLE, True)]
)
def test_buckets_match_hand_computed_table(table, bidirectional):
    distances = torch.tensor(list(table))
    buckets = t5_relative_bucket(
        distances, bidirectional=bidirectional, num_buckets=8, max_distance=16
    )
    assert buckets.tolist() == list(table.values())


def test_default_buckets_cover_the_range_and_saturate():
    distances = torch.arange(-300, 301)
    causal = t5_relative_bucket(distances, bidirectional=False, num_buckets=32, max_distance=128)
    both = t5_relative_bucket(distances, bidirectional=True, num_buckets=32, max_distance=128)
    assert causal.min() == 0 and causal.max() == 31
    assert both.min() == 0 and both.max() == 31
    assert (causal[distances >= 128] == 31).all()
    assert (both[distances >= 128] == 15).all() and (both[distances <= -128] == 31).all()
    assert (causal.diff()[distances[1:] > 0] >= 0).all()  # monotone in the distance


def test_bias_looks_up_each_pair():
    torch.manual_seed(0)
    module = T5RelativePositionBias(3, causal=False, num_buckets=8, max_distance=16)
    span = PositionSpan.for_lengths(5, num_keys=9, offset=20)  # keys 16..24, queries 20..24
    bias = module(span, torch.device("cpu"), torch.float64)
    assert bias.shape == (3, 5, 9)
    for i, query in enumerate(range(20, 25)):
        for j, key in enumerate(range(16, 25)):
            bucket = t5_relative_bucket(
                torch.tensor(query - key), bidirectional=True, num_buckets=8, max_distance=16
            )
            torch.testing.assert_close(bias[:, i, j], module.embedding.weight[bucket].double())


def test_one_bias_shared_by_all_layers_and_direction_follows_the_stack():
    for stack, causal in ((Encoder, False), (Decoder, True)):
        layers = stack(dim=16, depth=3, heads=2, rel_pos_bias=True)
        biases = [m for m in layers.modules() if isinstance(m, T5RelativePositionBias)]
        assert len(biases) == 1 and biases[0].causal is causal
        assert biases[0].embedding.weight.shape == (32, 2)


def test_bias_changes_the_output_and_gets_a_gradient():
    torch.manual_seed(0)
    model = TransformerWrapper(
        num_tokens=10,
        max_seq_len=8,
        use_abs_pos_emb=False,
        attn_layers=Encoder(dim=16, depth=2, heads=2, rel_pos_bias=True),
    )
    x = torch.randint(0, 10, (1, 8))
    out = model(x)
    out.sum().backward()
    weight = model.attn_layers.positions.score_bias.embedding.weight
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    with torch.no_grad():
        weight.zero_()
        assert not torch.allclose(model(x), out)


def test_invalid_bucket_layout_is_a_clear_error():
    with pytest.raises(ValueError, match="rel_pos_max_distance"):
        Encoder(dim=16, depth=1, heads=2, rel_pos_bias=True, rel_pos_num_buckets=2)
    with pytest.raises(ValueError, match="rel_pos_num_buckets"):
        Decoder(dim=16, depth=1, heads=2, rel_pos_bias=True, rel_pos_max_distance=16,
                rel_pos_num_buckets=64)  # fmt: skip
