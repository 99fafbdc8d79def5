"""Transformer-XL memories carry the key-padding mask of the positions they remember
(``Memories``, issue 13, item 6): joined and cut with the memories, kept by ``shift_mem_down``.
The property over the feature matrix is ``tests/properties/test_memory_padding.py``."""

from __future__ import annotations

import pytest
import torch

from x_transformers.generation.recurrence import Memories, next_memories, shift_memories


def test_memories_carry_the_mask_through_shifts_and_cuts():
    hiddens = [torch.randn(2, 3, 4) for _ in range(3)]
    segment_mask = torch.tensor([[False, True, True], [True, True, True]])
    first = next_memories(None, hiddens, max_mem_len=4, mask=segment_mask)
    assert isinstance(first, Memories) and torch.equal(first.mask, segment_mask)
    second = next_memories(first, hiddens, max_mem_len=6)  # an unmasked segment
    assert second.mask.tolist() == [[False, True, True, True, True, True], [True] * 6]
    assert next_memories(first, hiddens, max_mem_len=5).mask.all()  # the padding is cut off
    shifted = shift_memories(second, 1)
    assert shifted[0] is second[1] and shifted.mask is second.mask
    assert next_memories(None, hiddens, max_mem_len=4).mask is None  # nothing padded
    with pytest.raises(ValueError, match="mask"):
        Memories(hiddens, torch.ones(2, 5, dtype=torch.bool))
