"""Residual attention (RealFormer, 2012.11747): each block's pre-softmax scores are its own
``scale * q.k`` plus the previous block's, self-attention to self-attention and cross to cross."""

from __future__ import annotations

import pytest
import torch

from x_transformers import Decoder, Encoder, XTransformer
from x_transformers.attention.residual_scores import ResidualScores
from x_transformers.layers.layout import CROSS_ATTENTION, SELF_ATTENTION


def carried_scores(stack, kind: str) -> list:
    """Record what each residual-attention stage of the blocks of ``kind`` hands on (hooks)."""
    carried = []
    for block_kind, block in zip(stack.layer_kinds, stack.blocks):
        for stage in block.branch.declared_stages if block_kind == kind else ():
            if isinstance(stage, ResidualScores):
                stage.register_forward_hook(lambda module, args, out: carried.append(out))
    return carried


def own_scores(block, x, context=None):
    """scale * q.k of one attention block, recomputed from its input."""
    attn = block.branch
    h = block.normalize_input(x)
    kv_input = h if context is None else context
    q = (h @ attn.proj.to_q.weight.t()).unflatten(-1, (attn.heads, -1)).transpose(1, 2)
    k_width = attn.shapes.k_width
    k = (kv_input @ attn.proj.to_kv.weight[:k_width].t()).unflatten(-1, (attn.heads, -1))
    return q @ k.permute(0, 2, 3, 1) / q.shape[-1] ** 0.5


@pytest.mark.parametrize("pre_norm", [True, False])
def test_scores_accumulate_across_self_attention_blocks(pre_norm):
    torch.manual_seed(0)
    stack = Encoder(
        dim=16, depth=3, heads=2, attn_dim_head=4, residual_attn=True, pre_norm=pre_norm
    )
    x = torch.randn(2, 5, 16)
    handed_on = carried_scores(stack, SELF_ATTENTION)
    _, inter = stack(x, return_hiddens=True)
    attention_inputs = [h for h, kind in zip(inter.hiddens, stack.layer_kinds) if kind == "a"]
    blocks = [b for b, kind in zip(stack.blocks, stack.layer_kinds) if kind == "a"]
    assert len(handed_on) == len(blocks) == 3
    carried = torch.zeros(())
    for block, block_input, result in zip(blocks, attention_inputs, handed_on):
        carried = carried + own_scores(block, block_input)
        torch.testing.assert_close(result, carried, rtol=1e-5, atol=1e-5)
    # the forward's state holds the last block's scores under the feature's own key
    assert inter.state.keys() == ("residual_attn",)
    torch.testing.assert_close(inter.state.get("residual_attn"), carried, rtol=1e-5, atol=1e-5)


def test_without_residual_attention_nothing_is_carried():
    stack = Decoder(dim=16, depth=2, heads=2)
    _, inter = stack(torch.randn(1, 4, 16), return_hiddens=True)
    assert inter.state.keys() == ()


def test_the_first_block_is_plain_attention():
    torch.manual_seed(0)
    residual = Decoder(dim=16, depth=1, heads=2, residual_attn=True)
    torch.manual_seed(0)
    plain = Decoder(dim=16, depth=1, heads=2)
    x = torch.randn(2, 6, 16)
    torch.testing.assert_close(residual(x), plain(x), rtol=1e-5, atol=1e-5)


def test_cross_residual_attention_carries_cross_scores_only():
    torch.manual_seed(0)
    stack = Decoder(
        dim=16, depth=2, heads=2, attn_dim_head=4, cross_attend=True, cross_residual_attn=True
    )
    x, context = torch.randn(2, 5, 16), torch.randn(2, 3, 16)
    assert carried_scores(stack, SELF_ATTENTION) == []  # no stage on self-attention
    handed_on = carried_scores(stack, CROSS_ATTENTION)
    _, inter = stack(x, context=context, return_hiddens=True)
    assert inter.state.keys() == ("cross_residual_attn",)
    kinds = stack.layer_kinds
    cross_blocks = [(b, h) for b, h, k in zip(stack.blocks, inter.hiddens, kinds) if k == "c"]
    first, second = (own_scores(b, h, context=context) for b, h in cross_blocks)
    torch.testing.assert_close(handed_on[0], first)
    torch.testing.assert_close(handed_on[1], first + second, rtol=1e-5, atol=1e-5)


def test_encoder_decoder_cross_residual_keyword():
    model = XTransformer(
        dim=16,
        enc_num_tokens=10,
        enc_depth=1,
        enc_heads=2,
        enc_max_seq_len=8,
        dec_num_tokens=10,
        dec_depth=2,
        dec_heads=2,
        dec_max_seq_len=8,
        dec_cross_residual_attn=True,
    )
    decoder = model.decoder.net.attn_layers
    flags = {
        (kind, any(isinstance(s, ResidualScores) for s in b.branch.declared_stages))
        for kind, b in zip(decoder.layer_kinds, decoder.blocks)
        if kind in (SELF_ATTENTION, CROSS_ATTENTION)
    }
    assert flags == {(SELF_ATTENTION, False), (CROSS_ATTENTION, True)}
    loss = model(torch.randint(0, 10, (2, 6)), torch.randint(0, 10, (2, 7)))
    loss.backward()
    assert torch.isfinite(loss)
