"""Padding inside Transformer-XL memories (1901.02860) stays masked (issue 13, item 6).

A position that was padding (key-padding mask False) when a segment was computed is remembered
with its mask: ``return_mems=True`` gives memories that carry it (``Memories.mask``), and every
later segment that still remembers the position treats it as a masked key. Checked over every
decoder row of the feature matrix: the content of a padded position never reaches a later
segment, and for the rows whose segments equal one long pass, the segments equal the long pass
with the same mask.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.feature_matrix import NUM_TOKENS, build_model, cases_for

SEGMENT, SEGMENTS = 4, 3
TIGHT = {"rtol": 1e-10, "atol": 1e-10}


def tokens(batch=2, seq=SEGMENT * SEGMENTS, seed=3):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, NUM_TOKENS, (batch, seq), generator=generator)


def xl_model(row, max_mem_len=2 * SEGMENT, shift_mem_down=0):
    """The row's decoder with XL memories and no absolute positions (they restart with every
    segment)."""
    wrapper_kwargs = {k: v for k, v in row.wrapper_kwargs.items() if k != "sinusoidal_pos_emb"}
    wrapper_kwargs.update(
        use_abs_pos_emb=False, max_mem_len=max_mem_len, shift_mem_down=shift_mem_down
    )
    return build_model(dataclasses.replace(row, wrapper_kwargs=wrapper_kwargs), "decoder")


def padding_mask():
    """Row 0 has padding at positions 1 and 2 of the first segment, row 1 none."""
    mask = torch.ones(2, SEGMENT * SEGMENTS, dtype=torch.bool)
    mask[0, 1:3] = False
    return mask


def by_segments(model, x, mask):
    """Outputs of x fed segment by segment, each with its slice of the mask, carrying the
    memories; also the memories after each segment."""
    outputs, history, mems = [], [], None
    for start in range(0, x.shape[1], SEGMENT):
        window = slice(start, start + SEGMENT)
        out, mems = model(x[:, window], mask=mask[:, window], mems=mems, return_mems=True)
        outputs.append(out)
        history.append(mems)
    return torch.cat(outputs, dim=1), history


XL_ROWS = [p for p in cases_for("decoder") if not {"no_cache", "no_xl"} & set(p.values[0].tags)]
# every row that can run on memories (rows tagged no_xl, such as memory tokens, are not equal
# to one long pass but must still ignore remembered padding); the reversible executor keeps no
# self-attention inputs, so it gives no memories to carry a mask
MEMORY_ROWS = [
    p
    for p in cases_for("decoder")
    if "no_cache" not in p.values[0].tags and not p.values[0].layer_kwargs.get("reversible")
]


@pytest.mark.parametrize("row", MEMORY_ROWS)
def test_remembered_padding_never_reaches_a_later_segment(row):
    model = xl_model(row)
    x, mask = tokens(), padding_mask()
    changed = x.clone()
    changed[~mask] = (changed[~mask] + 7) % NUM_TOKENS
    with torch.no_grad():
        before, history = by_segments(model, x, mask)
        after, _ = by_segments(model, changed, mask)
    # the first segment's kept positions, and every later segment, ignore the padded content
    kept = mask.clone()
    torch.testing.assert_close(before[kept], after[kept], **TIGHT)
    # the memories remember which positions were padding, as long as they hold them
    assert history[0].mask[0, 1:3].tolist() == [False, False]
    assert history[1].mask.shape == (2, 2 * SEGMENT) and not history[1].mask[0, 1:3].any()
    assert history[2].mask.all()  # the padded positions have left the memory


@pytest.mark.parametrize("row", XL_ROWS)
def test_padded_segments_equal_the_masked_long_pass(row):
    model = xl_model(row, max_mem_len=SEGMENT * SEGMENTS)
    x, mask = tokens(), padding_mask()
    with torch.no_grad():
        full = model(x, mask=mask)
        segments, _ = by_segments(model, x, mask)
    torch.testing.assert_close(segments[mask], full[mask], **TIGHT)


def test_plain_lists_of_memories_are_fully_visible():
    """Memories given as a plain list (no mask) keep their meaning: every position visible."""
    row = cases_for("decoder")[0].values[0]
    model = xl_model(row)
    x = tokens()
    with torch.no_grad():
        _, mems = model(x[:, :SEGMENT], return_mems=True)
        with_mask = model(x[:, SEGMENT:], mems=mems)
        plain = model(x[:, SEGMENT:], mems=list(mems))
    torch.testing.assert_close(with_mask, plain, **TIGHT)
