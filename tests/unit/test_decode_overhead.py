"""A decoding step calls no module that does nothing (``nn.Identity``, a p=0 ``nn.Dropout``):
each such call is Python overhead of every generated token (issue 12)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_pre_hook

from x_transformers import AutoregressiveWrapper, Decoder, TransformerWrapper

CONFIGS = {
    "plain": {},
    "modern": {"rotary_pos_emb": True, "use_rmsnorm": True, "ff_glu": True, "attn_qk_norm": True},
}


def no_op_calls(module_types_called: list) -> list:
    return [
        name
        for name, module in module_types_called
        if type(module) is nn.Identity or (type(module) is nn.Dropout and module.p == 0)
    ]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_decoding_calls_no_no_op_module(name):
    torch.manual_seed(0)
    model = TransformerWrapper(
        num_tokens=32,
        max_seq_len=32,
        attn_layers=Decoder(dim=32, depth=2, heads=2, **CONFIGS[name]),
    )
    names = {id(module): name for name, module in model.named_modules()}
    called = []

    def record(module, args):
        if id(module) in names:
            called.append((names[id(module)], module))

    handle = register_module_forward_pre_hook(record)
    try:
        AutoregressiveWrapper(model).generate(torch.randint(0, 32, (2, 4)), 3, temperature=0.0)
    finally:
        handle.remove()
    assert called, "the hook saw no module call"
    assert no_op_calls(called) == []


def test_the_blocks_of_a_forward_share_one_combined_mask():
    """Attend combines the causal and padding masks once per forward (the forward's state holds
    them), not once per block: every block's kernel receives the same tensor."""
    from x_transformers.attention import attend

    torch.manual_seed(0)
    model = TransformerWrapper(
        num_tokens=32,
        max_seq_len=32,
        attn_layers=Decoder(dim=32, depth=3, heads=2, alibi_pos_bias=True),
    )
    seen = []
    original = attend.Attend._fused

    def spy(self, q, k, v, mask, *args):
        seen.append(mask)
        return original(self, q, k, v, mask, *args)

    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[0, :2] = False
    attend.Attend._fused = spy
    try:
        model(torch.randint(0, 32, (2, 6)), mask=mask)
        model(torch.randint(0, 32, (2, 6)), mask=mask)  # a new forward: its own combined mask
    finally:
        attend.Attend._fused = original
    first, second = seen[:3], seen[3:]
    assert len(seen) == 6 and all(m is first[0] for m in first)
    assert seen[0].shape[-2:] == (6, 6) and not seen[0][..., 3, 4].any()  # causal
    assert all(m is second[0] for m in second) and second[0] is not first[0]
    assert torch.equal(second[0], first[0])


def test_generation_allocates_each_cache_buffer_once(monkeypatch):
    """generate() reserves the known length in the dynamic KV cache: every block's key and value
    buffers are allocated once, never regrown (and copied) while decoding."""
    from x_transformers.generation.kv_cache import DynamicSlot

    allocations = []
    grown = DynamicSlot._grown

    def counting(self, filled, new, needed):
        allocations.append(needed)
        return grown(self, filled, new, needed)

    monkeypatch.setattr(DynamicSlot, "_grown", counting)
    torch.manual_seed(0)
    depth = 3
    model = TransformerWrapper(
        num_tokens=32, max_seq_len=64, attn_layers=Decoder(dim=16, depth=depth, heads=2)
    )
    prompt = torch.randint(0, 32, (2, 5))
    AutoregressiveWrapper(model).generate(prompt, 20, temperature=0.0)
    assert len(allocations) == 2 * depth  # keys and values of each block, once
