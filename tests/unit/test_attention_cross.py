"""The attention variants on cross-attention: ``cross_attn_*`` reaches cross-attention only,
``attn_*`` reaches both, and every variant respects the context mask."""

from __future__ import annotations

import pytest
import torch

from x_transformers import CrossAttender, Decoder
from x_transformers.layers.layout import CROSS_ATTENTION, SELF_ATTENTION

CROSS_VARIANTS = {
    "mem_kv": {"cross_attn_num_mem_kv": 2},
    "sparse_topk": {"cross_attn_sparse_topk": 2},
    "entmax15": {"cross_attn_use_entmax15": True},
    "talking_heads": {"cross_attn_talking_heads": True},
    "one_kv_head": {"cross_attn_one_kv_head": True},
    "kv_heads": {"cross_attn_kv_heads": 2},
    "collab_heads": {"cross_attn_collab_heads": True},
    "on_attn": {"cross_attn_on_attn": True},
    "gate_values": {"cross_attn_gate_values": True},
    "head_scale": {"cross_attn_head_scale": True},
    "qk_norm": {"cross_attn_qk_norm": True, "cross_attn_qk_norm_groups": 2},
    "qk_norm_dim_scale": {"cross_attn_qk_norm": True, "cross_attn_qk_norm_dim_scale": True},
    "residual": {"cross_residual_attn": True},
    "dropout": {"cross_attn_dropout": 0.1},
    "flash": {"cross_attn_flash": True, "cross_attn_kv_heads": 1, "cross_attn_num_mem_kv": 1},
}


def blocks_of(stack, kind):
    return [b.branch for b, k in zip(stack.blocks, stack.layer_kinds) if k == kind]


@pytest.mark.parametrize("name", list(CROSS_VARIANTS))
def test_cross_attention_variant_respects_the_context_mask(name):
    torch.manual_seed(0)
    model = CrossAttender(
        dim=16, depth=2, heads=4, attn_dim_head=4, dim_context=12, **CROSS_VARIANTS[name]
    ).eval()
    x, context = torch.randn(2, 3, 16), torch.randn(2, 6, 12)
    context_mask = torch.ones(2, 6, dtype=torch.bool)
    context_mask[0, 4:] = False
    changed = context.clone()
    changed[0, 4:] += 1
    out = model(x, context=context, context_mask=context_mask)
    torch.testing.assert_close(out, model(x, context=changed, context_mask=context_mask))
    assert not torch.allclose(out[1], model(x, context=changed * 2, context_mask=context_mask)[1])
    model.train()
    model(x, context=context, context_mask=context_mask).pow(2).mean().backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), param_name


def test_cross_prefix_reaches_cross_attention_only():
    stack = Decoder(
        dim=16,
        depth=1,
        heads=4,
        attn_dim_head=4,
        cross_attend=True,
        cross_attn_one_kv_head=True,
        cross_attn_num_mem_kv=2,
    )
    (self_attention,) = blocks_of(stack, SELF_ATTENTION)
    (cross_attention,) = blocks_of(stack, CROSS_ATTENTION)
    assert self_attention.proj.to_kv.weight.shape[0] == 2 * 4 * 4
    assert self_attention.memory_kv is None
    assert cross_attention.proj.to_kv.weight.shape[0] == 2 * 1 * 4
    assert cross_attention.memory_kv is not None


def test_attn_prefix_reaches_both_and_cross_prefix_overrides():
    stack = Decoder(
        dim=16,
        depth=1,
        heads=4,
        cross_attend=True,
        attn_kv_heads=2,
        attn_qk_norm=True,
        cross_attn_kv_heads=1,
    )
    (self_attention,) = blocks_of(stack, SELF_ATTENTION)
    (cross_attention,) = blocks_of(stack, CROSS_ATTENTION)
    assert self_attention.shapes.kv_heads == 2 and cross_attention.shapes.kv_heads == 1
    assert self_attention.query_norm is not None and cross_attention.query_norm is not None
