"""The mechanism behind ragged batches (issue 13, item 2): a per-row offset in the position span,
per-row rotary / xPos, the placement of memory tokens after each row's padding, and the checks of
``seq_start_pos``. The property itself is ``tests/properties/test_ragged.py``."""

from __future__ import annotations

import pytest
import torch

from tests.feature_matrix import NUM_TOKENS, build_model, case
from x_transformers.positional import PositionSpan
from x_transformers.positional.rotary import RotaryEmbedding
from x_transformers.wrappers.memory_tokens import PrefixPlacement


def test_a_row_offset_shifts_every_position_of_its_row():
    span = PositionSpan.for_lengths(3, 5, offset=2, row_offset=torch.tensor([0, 2]))
    assert span.query_positions(torch.device("cpu")).tolist() == [[2, 3, 4], [0, 1, 2]]
    assert span.key_positions(torch.device("cpu")).tolist() == [[0, 1, 2, 3, 4], [-2, -1, 0, 1, 2]]
    plain = PositionSpan.for_lengths(3, 5, offset=2)
    assert torch.equal(span.distances(torch.device("cpu")), plain.distances(torch.device("cpu")))
    with pytest.raises(ValueError, match="row_offset"):
        PositionSpan.for_lengths(3, row_offset=torch.tensor([[0], [2]]))


@pytest.mark.parametrize("xpos", [None, 8.0])
def test_per_row_rotation_equals_each_rows_own_offset(xpos):
    rotary = RotaryEmbedding(8, xpos_scale_base=xpos)
    q, k = torch.randn(2, 3, 4, 8, dtype=torch.float64), torch.randn(2, 3, 4, 8)
    offsets = torch.tensor([0, 3])
    span = PositionSpan.for_lengths(4, 4, offset=5, row_offset=offsets)
    rotation = rotary(span, torch.device("cpu"), torch.float64)
    for row, shift in enumerate(offsets.tolist()):
        alone = rotary(PositionSpan.for_lengths(4, 4, offset=5 - shift), q.device, torch.float64)
        torch.testing.assert_close(
            rotation.rotate_queries(q)[row], alone.rotate_queries(q[row : row + 1])[0]
        )
        torch.testing.assert_close(
            rotation.rotate_keys(k)[row], alone.rotate_keys(k[row : row + 1])[0]
        )


def test_prefix_placement_moves_the_prefix_after_each_rows_padding():
    given = torch.tensor([[10, 11, 0, 0, 1, 2], [10, 11, 1, 2, 3, 4]])  # prefix of 2, then pads
    placement = PrefixPlacement(2, torch.tensor([2, 0]), given.shape[1])
    placed = placement.place(given)
    assert placed.tolist() == [[0, 0, 10, 11, 1, 2], [10, 11, 1, 2, 3, 4]]
    assert torch.equal(placement.restore(placed), given)


def test_row_starts_are_checked():
    model = build_model(case("plain"), "decoder")
    x = torch.randint(0, NUM_TOKENS, (2, 5))
    with pytest.raises(ValueError, match="seq_start_pos"):
        model(x, seq_start_pos=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="seq_start_pos"):
        model(x, seq_start_pos=torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="one start per row"):
        model(x, seq_start_pos=torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="integer tensor"):
        model(x, seq_start_pos=torch.tensor([0.0, 1.0]))
