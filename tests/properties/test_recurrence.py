"""Transformer-XL recurrence (1901.02860) over the feature matrix and its invariants.

A decoder fed two segments with memories gives, for the second segment, the logits of one pass
over both segments with the equivalent attention window (the memory length): memories are the
detached inputs of each self-attention block, and the positions of a segment start after its
memory. ``shift_mem_down`` (2012.15688) feeds the memory of layer l + s to layer l; memories never
exceed ``max_mem_len``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.feature_matrix import NUM_TOKENS, build_model, case, cases_for
from x_transformers.attention import Attention

SEQ = 10
TIGHT = {"rtol": 1e-10, "atol": 1e-10}


def tokens(batch=2, seq=SEQ, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, NUM_TOKENS, (batch, seq), generator=generator)


def xl_model(row, max_mem_len=SEQ, shift_mem_down=0):
    """The row's decoder with XL memories and no absolute positions (they restart with every
    segment, so no long pass could match)."""
    wrapper_kwargs = {k: v for k, v in row.wrapper_kwargs.items() if k != "sinusoidal_pos_emb"}
    wrapper_kwargs.update(
        use_abs_pos_emb=False, max_mem_len=max_mem_len, shift_mem_down=shift_mem_down
    )
    return build_model(dataclasses.replace(row, wrapper_kwargs=wrapper_kwargs), "decoder")


def window_mask(seq: int, first_segment: int, mem_len: int) -> torch.Tensor:
    """(i, j) causal mask of the long pass equivalent to two XL segments: the second segment's
    queries see only the last ``mem_len`` positions of the first segment."""
    query = torch.arange(seq)[:, None]
    key = torch.arange(seq)[None, :]
    in_memory = key >= first_segment - mem_len
    return (key <= query) & ((query < first_segment) | in_memory)


XL_ROWS = [p for p in cases_for("decoder") if not {"no_cache", "no_xl"} & set(p.values[0].tags)]
POSITIONAL = [
    pytest.param(case("plain"), id="plain"),
    pytest.param(case("rotary", rotary_pos_emb=True), id="rotary"),
    pytest.param(case("t5", rel_pos_bias=True), id="t5"),
    pytest.param(case("alibi", alibi_pos_bias=True), id="alibi"),
    pytest.param(case("dynamic", dynamic_pos_bias=True), id="dynamic"),
]


@pytest.mark.parametrize("row", XL_ROWS)
def test_two_segments_equal_one_long_pass(row):
    model = xl_model(row)
    x = tokens()
    with torch.no_grad():
        full = model(x)
        first, mems = model(x[:, :4], return_mems=True)
        second = model(x[:, 4:], mems=mems)
    torch.testing.assert_close(first, full[:, :4], **TIGHT)
    torch.testing.assert_close(second, full[:, 4:], **TIGHT)


@pytest.mark.parametrize("row", POSITIONAL)
def test_a_short_memory_equals_the_windowed_long_pass(row):
    mem_len, first_segment = 3, 6
    model = xl_model(row, max_mem_len=mem_len)
    x = tokens()
    with torch.no_grad():
        full = model(x, attn_mask=window_mask(SEQ, first_segment, mem_len))
        _, mems = model(x[:, :first_segment], return_mems=True)
        second = model(x[:, first_segment:], mems=mems)
    assert all(m.shape[1] == mem_len for m in mems)
    torch.testing.assert_close(second, full[:, first_segment:], **TIGHT)


@pytest.mark.parametrize("row", POSITIONAL)
def test_three_segments_carry_memories_across(row):
    model = xl_model(row, max_mem_len=SEQ)
    x = tokens(seq=12)
    with torch.no_grad():
        full = model(x)
        mems, outputs = None, []
        for start in range(0, 12, 4):
            out, mems = model(x[:, start : start + 4], mems=mems, return_mems=True)
            outputs.append(out)
    torch.testing.assert_close(torch.cat(outputs, dim=1), full, **TIGHT)


def test_memories_never_exceed_max_mem_len_and_are_detached():
    model = xl_model(case("plain"), max_mem_len=5).train()
    mems = None
    for segment in range(4):
        _, mems = model(tokens(seq=3, seed=segment), mems=mems, return_mems=True)
        expected = min(3 * (segment + 1), 5)
        assert [tuple(m.shape) for m in mems] == [(2, expected, 32)] * 2
        assert not any(m.requires_grad for m in mems)


def test_shift_mem_down_routes_memories_to_the_layer_below():
    plain = xl_model(case("rotary", rotary_pos_emb=True))
    shifted = xl_model(case("rotary", rotary_pos_emb=True), shift_mem_down=1)
    shifted.load_state_dict(plain.state_dict())
    x = tokens()
    with torch.no_grad():
        _, mems = plain(x[:, :5], return_mems=True)
        rotated = [mems[1], mems[0]]  # layer l gets the memory of layer l + 1 (mod depth)
        torch.testing.assert_close(
            shifted(x[:, 5:], mems=mems), plain(x[:, 5:], mems=rotated), **TIGHT
        )
        # and it is a real change: the layers do not see their own memories
        assert not torch.allclose(shifted(x[:, 5:], mems=mems), plain(x[:, 5:], mems=mems))


def test_each_layer_attends_to_its_routed_memory():
    model = xl_model(case("plain"), shift_mem_down=1)
    seen = []
    for block in model.attn_layers.blocks:
        if isinstance(block.branch, Attention):
            block.branch.register_forward_pre_hook(
                lambda module, args, kwargs: seen.append(kwargs["memory"]), with_kwargs=True
            )
    mems = [torch.randn(2, 4, 32, dtype=torch.float64) for _ in range(2)]
    with torch.no_grad():
        model(tokens(), mems=mems)
    blocks = [b for b in model.attn_layers.blocks if isinstance(b.branch, Attention)]
    torch.testing.assert_close(seen[0], blocks[0].pre_branch_norm(mems[1]))
    torch.testing.assert_close(seen[1], blocks[1].pre_branch_norm(mems[0]))


def test_return_mems_needs_max_mem_len():
    model = build_model(case("plain"), "decoder")
    with pytest.raises(ValueError, match="max_mem_len"):
        model(tokens(), return_mems=True)


@pytest.mark.parametrize(
    "mems, message",
    [
        (lambda: [torch.zeros(2, 3, 32)], "list of 2 tensors"),
        (lambda: [torch.zeros(2, 3, 32), torch.zeros(2, 4, 32)], "same length"),
        (lambda: [torch.zeros(3, 3, 32)] * 2, "batch=2"),
    ],
)
def test_bad_memories_are_refused_with_the_shapes(mems, message):
    model = xl_model(case("plain"))
    with pytest.raises(ValueError, match=message):
        model(tokens(), mems=[m.double() for m in mems()])


def test_memories_and_cache_cannot_be_combined():
    from x_transformers.generation.kv_cache import DynamicKVCache

    model = xl_model(case("plain"))
    _, mems = model(tokens(), return_mems=True)
    with pytest.raises(ValueError, match="cannot be combined"):
        model(tokens(), mems=mems, cache=DynamicKVCache())
