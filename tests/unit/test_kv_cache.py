"""The KV cache classes and the feature declarations (x_transformers.generation.kv_cache)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from x_transformers import Decoder, Encoder, TransformerWrapper
from x_transformers.generation.kv_cache import (
    DynamicKVCache,
    StaticKVCache,
    check_cache,
    kv_cache_blockers,
    resolve_cache,
    sequence_offset,
)


def keys(batch=2, heads=3, n=1, dim=4, start=0.0):
    """(b, h, n, d) keys whose value is their position (start + index along n)."""
    positions = torch.arange(n, dtype=torch.float64) + start
    return positions[None, None, :, None].expand(batch, heads, n, dim).clone()


def test_dynamic_slot_appends_along_the_keys():
    cache = DynamicKVCache()
    slot = cache.slot(0)
    k, v = slot.extend(keys(n=3), keys(n=3))
    assert k.shape == (2, 3, 3, 4)
    k, v = slot.extend(keys(n=1, start=3), keys(n=1, start=3))
    assert k.shape == (2, 3, 4, 4)
    assert k[0, 0, :, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert slot.pending(torch.zeros(2, 5, 8)).shape == (2, 5, 8)


def test_context_slot_projects_the_context_once():
    slot = DynamicKVCache().slot(1, context=True)
    context = torch.randn(2, 5, 8)
    assert slot.pending(context) is context
    first = slot.extend(keys(n=5), keys(n=5))
    assert slot.pending(context).shape == (2, 0, 8)  # nothing left to project
    empty = keys(n=0)
    again = slot.extend(empty, empty)
    assert again[0] is first[0] and again[1] is first[1]


def test_dynamic_key_mask_remembers_padding():
    cache = DynamicKVCache()
    x = torch.zeros(2, 3, 8)
    assert cache.visible_keys(x, None) is None  # nothing masked so far: no mask at all
    cache.advance(3)
    mask = torch.tensor([[True, False], [True, True]])
    visible = cache.visible_keys(torch.zeros(2, 2, 8), mask)
    assert visible.shape == (2, 1, 1, 5)
    assert visible[:, 0, 0].tolist() == [[True] * 3 + [True, False], [True] * 5]
    cache.advance(2)
    visible = cache.visible_keys(torch.zeros(2, 1, 8), None)  # later steps add visible keys
    assert visible[0, 0, 0].tolist() == [True, True, True, True, False, True]


def test_dynamic_cache_slides_and_reorders():
    cache = DynamicKVCache()
    slot = cache.slot(0)
    slot.extend(keys(n=5), keys(n=5))
    cache.visible_keys(torch.zeros(2, 5, 8), torch.tensor([[True] * 5, [False] + [True] * 4]))
    cache.advance(5)
    cache.keep_last(3)
    assert slot.keys[0, 0, :, 0].tolist() == [2.0, 3.0, 4.0]
    assert (cache.offset, cache.num_stored) == (5, 3)  # positions go on, fewer keys stored
    assert cache.position_span(1) == {
        "offset": 5,
        "num_keys": 4,
        "key_start": None,
        "num_new_keys": 1,
    }
    cache.reorder(torch.tensor([1, 1, 0]))
    assert slot.keys.shape[0] == 3 and cache.key_padding.shape == (3, 3)


def test_key_padding_is_written_in_place_and_reads_as_the_concatenation():
    """A left-padded batch's key padding grows by writing into a reserved buffer (no copy of the
    whole mask per decoding step); it reads as every recorded mask joined along the keys."""
    cache = DynamicKVCache(reserve=8)
    prompt_mask = torch.tensor([[False, True, True], [True, True, True]])
    returned = cache.visible_keys(torch.zeros(2, 3, 4), prompt_mask)
    assert torch.equal(returned[:, 0, 0], prompt_mask)
    cache.advance(3)
    buffer = cache._padding_buffer
    for step in range(4):
        mask = None if step % 2 else torch.tensor([[True], [step == 0]])
        cache.visible_keys(torch.zeros(2, 1, 4), mask)
        cache.advance(1)
    assert cache._padding_buffer is buffer  # no reallocation within the reserve
    # steps 0 and 2 record [[True], [step == 0]], steps 1 and 3 no mask (all visible)
    expected = torch.tensor([[0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 1]], dtype=torch.bool)
    assert torch.equal(cache.key_padding, expected)
    cache.keep_last(4)  # the sliding window keeps the last stored keys' padding
    assert torch.equal(cache.key_padding, expected[:, -4:])
    cache.reorder(torch.tensor([1, 0]))
    assert torch.equal(cache.key_padding, expected[[1, 0], -4:])


def test_a_cache_with_memory_tokens_cannot_slide():
    cache = DynamicKVCache()
    cache.prefix_length = 2
    with pytest.raises(ValueError, match="prefix_length=2"):
        cache.keep_last(3)


def test_static_cache_writes_at_a_tensor_position_advanced_in_place():
    cache = StaticKVCache(6)
    position = cache.offset
    slot = cache.slot(0)
    cache.visible_keys(torch.zeros(2, 2, 8), None)
    k, _ = slot.extend(keys(n=2, start=10), keys(n=2, start=10))
    assert k.shape == (2, 3, 6, 4)  # the whole buffer, every step
    cache.advance(2)
    assert cache.offset is position and int(position) == 2  # same tensor, advanced in place
    cache.visible_keys(torch.zeros(2, 1, 8), None)
    k, _ = slot.extend(keys(n=1, start=20), keys(n=1, start=20))
    assert k[0, 0, :, 0].tolist() == [10.0, 11.0, 20.0, 0.0, 0.0, 0.0]
    assert cache.position_span(1) == {
        "offset": position,
        "num_keys": 6,
        "key_start": 0,
        "num_new_keys": 1,
    }


def test_static_key_mask_is_written_padded_and_causal():
    cache = StaticKVCache(5)
    mask = torch.tensor([[False, True, True], [True, True, True]])
    visible = cache.visible_keys(torch.zeros(2, 3, 8), mask)
    assert visible.shape == (2, 1, 3, 5)
    expected_row0 = [
        [False, False, False, False, False],
        [False, True, False, False, False],
        [False, True, True, False, False],
    ]
    assert visible[0, 0].tolist() == expected_row0
    cache.advance(3)
    visible = cache.visible_keys(torch.zeros(2, 1, 8), None)
    assert visible[0, 0, 0].tolist() == [False, True, True, True, False]


def test_a_static_cache_that_reads_written_slots_only_returns_views_of_them():
    cache = StaticKVCache(6, read_written_only=True)
    slot = cache.slot(0)
    visible = cache.visible_keys(torch.zeros(2, 2, 8), torch.tensor([[False, True], [True, True]]))
    k, v = slot.extend(keys(n=2, start=10), keys(n=2, start=10))
    assert k.shape == v.shape == (2, 3, 2, 4) and visible.shape == (2, 1, 2, 2)
    assert k.data_ptr() == slot.keys.data_ptr()  # a view of the buffer, not a copy
    cache.advance(2)
    assert cache.written.tolist() == [0, 1]
    assert cache.position_span(1)["num_keys"] == 3
    visible = cache.visible_keys(torch.zeros(2, 1, 8), None)
    k, _ = slot.extend(keys(n=1, start=20), keys(n=1, start=20))
    assert k[0, 0, :, 0].tolist() == [10.0, 11.0, 20.0]
    assert visible[:, 0, 0].tolist() == [[False, True, True], [True, True, True]]
    assert cache.key_padding.shape == (2, 3)
    cache.advance(1)
    cache.read_all()  # from now on: every slot, the unwritten ones masked
    visible = cache.visible_keys(torch.zeros(2, 1, 8), None)
    k, _ = slot.extend(keys(n=1, start=30), keys(n=1, start=30))
    assert k[0, 0, :, 0].tolist() == [10.0, 11.0, 20.0, 30.0, 0.0, 0.0]
    assert visible[1, 0, 0].tolist() == [True, True, True, True, False, False]


@pytest.mark.parametrize("wrapper_kwargs", [{}, {"num_memory_tokens": 2}])
def test_reading_written_slots_only_gives_the_whole_buffer_s_logits(wrapper_kwargs):
    torch.manual_seed(0)
    net = TransformerWrapper(
        num_tokens=19,
        max_seq_len=16,
        attn_layers=Decoder(dim=16, depth=2, heads=2, rotary_pos_emb=True),
        **wrapper_kwargs,
    ).eval()
    tokens = torch.randint(0, 19, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, :2] = False  # a left-padded row
    whole, written = StaticKVCache(12), StaticKVCache(12, read_written_only=True)
    with torch.no_grad():
        for cache in (whole, written):
            cache.logits = [net(tokens[:, :5], mask=mask[:, :5], cache=cache)]
            for t in range(5, 9):
                cache.logits.append(net(tokens[:, t : t + 1], cache=cache))
    for a, b in zip(whole.logits, written.logits, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_static_cache_needs_a_capacity():
    with pytest.raises(ValueError, match="capacity >= 1, got 0"):
        StaticKVCache(0)


class Blocking(nn.Module):
    supports_kv_cache = False
    kv_cache_keyword = "my_feature"


class Unnamed(nn.Module):
    supports_kv_cache = False


def test_blockers_are_collected_by_keyword_or_class_name():
    model = nn.Sequential(nn.Linear(2, 2), Blocking(), Blocking(), Unnamed())
    assert kv_cache_blockers(model) == ("my_feature", "Unnamed")
    assert kv_cache_blockers(nn.Linear(2, 2)) == ()


def test_the_stack_names_the_feature_that_prevents_caching():
    stack = Decoder(dim=16, depth=1, heads=2, shift_tokens=1)
    with pytest.raises(ValueError, match="cannot use a KV cache: '.*' do"):
        check_cache(stack, DynamicKVCache(), None)
    check_cache(stack, None, None)  # no cache, nothing to check


def test_intermediates_record_a_cache_only_where_it_can_be_used():
    decoder = TransformerWrapper(num_tokens=10, max_seq_len=8, attn_layers=Decoder(dim=16, depth=1))
    encoder = TransformerWrapper(num_tokens=10, max_seq_len=8, attn_layers=Encoder(dim=16, depth=1))
    x = torch.randint(0, 10, (1, 4))
    _, intermediates = decoder(x, return_intermediates=True)
    assert isinstance(intermediates.cache, DynamicKVCache) and intermediates.cache.offset == 4
    _, intermediates = encoder(x, return_intermediates=True)
    assert intermediates.cache is None
    with pytest.raises(ValueError, match="without a cache"):
        encoder(x, cache=intermediates)


def test_prepend_embeds_only_on_the_first_forward_of_a_cache():
    stack = Decoder(dim=16, depth=1)
    cache = DynamicKVCache()
    cache.advance(3)
    with pytest.raises(ValueError, match="first forward"):
        resolve_cache(cache, stack, record=False, prepend_embeds=torch.zeros(1, 2, 16))


def test_sequence_offset_counts_tokens_after_the_prefix():
    cache = DynamicKVCache()
    assert sequence_offset(cache, None) == 0
    cache.prefix_length = 2  # e.g. two memory tokens
    cache.advance(7)
    assert sequence_offset(cache, None) == 5
    per_row = sequence_offset(cache, torch.tensor([0, 3]))
    assert per_row.tolist() == [[5], [2]]


def test_dynamic_slot_grows_geometrically_and_appends_in_place():
    slot = DynamicKVCache().slot(0)
    slot.extend(keys(n=3), keys(n=3))
    capacities = []
    for step in range(3, 12):
        slot.extend(keys(start=step), keys(start=step))
        capacities.append(slot.key_buffer.shape[-2])
    assert capacities == [6, 6, 6, 12, 12, 12, 12, 12, 12]  # doubles when full
    assert slot.keys[0, 0, :, 0].tolist() == [float(p) for p in range(12)]


def test_a_cached_continuation_backpropagates_like_the_full_forward():
    torch.manual_seed(0)
    net = TransformerWrapper(num_tokens=10, max_seq_len=8, attn_layers=Decoder(dim=16, depth=2))
    net = net.double()
    x = torch.randint(0, 10, (2, 7))
    net(x).pow(2).sum().backward()
    expected = {name: p.grad.clone() for name, p in net.named_parameters()}
    net.zero_grad()
    first, cache = net(x[:, :4], return_intermediates=True)
    rest = net(x[:, 4:], cache=cache)
    torch.cat((first, rest), dim=1).pow(2).sum().backward()
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-9, atol=1e-9)
