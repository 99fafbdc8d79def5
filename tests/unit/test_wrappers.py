"""Shapes and contracts of every wrapper, and construction on the meta device."""

from __future__ import annotations

import pytest
import torch

from x_transformers import (
    ContinuousTransformerWrapper,
    CrossAttender,
    Decoder,
    Encoder,
    TransformerWrapper,
    ViTransformerWrapper,
    XTransformer,
)


def small_decoder(**kwargs):
    return Decoder(dim=16, depth=2, heads=2, attn_dim_head=8, **kwargs)


def test_token_wrapper_shapes():
    model = TransformerWrapper(num_tokens=11, max_seq_len=8, attn_layers=small_decoder())
    x = torch.randint(0, 11, (3, 5))
    assert model(x).shape == (3, 5, 11)
    assert model(x, return_embeddings=True).shape == (3, 5, 16)
    out, intermediates = model(x, return_intermediates=True)
    assert out.shape == (3, 5, 11) and len(intermediates.hiddens) == 4


def test_tie_embedding_reuses_the_token_embedding():
    model = TransformerWrapper(
        num_tokens=11, max_seq_len=8, attn_layers=small_decoder(), tie_embedding=True
    )
    assert model.to_logits is None
    x = torch.randint(0, 11, (1, 4))
    embeddings = model(x, return_embeddings=True)
    torch.testing.assert_close(model(x), embeddings @ model.token_emb.weight.t())


def test_prepend_embeds_extend_the_sequence():
    model = TransformerWrapper(num_tokens=11, max_seq_len=4, attn_layers=small_decoder())
    x = torch.randint(0, 11, (2, 4))
    out = model(x, prepend_embeds=torch.randn(2, 3, 16), mask=torch.ones(2, 4, dtype=torch.bool))
    assert out.shape == (2, 7, 11)  # prepended positions take no absolute position


def test_encoder_decoder_returns_a_loss_and_ties_embeddings():
    model = XTransformer(
        dim=16,
        tie_token_emb=True,
        enc_num_tokens=9,
        enc_depth=1,
        enc_heads=2,
        enc_max_seq_len=8,
        dec_num_tokens=9,
        dec_depth=1,
        dec_heads=2,
        dec_max_seq_len=8,
    )
    assert model.encoder.token_emb is model.decoder.net.token_emb
    src, tgt = torch.randint(0, 9, (2, 6)), torch.randint(0, 9, (2, 5))
    loss = model(src, tgt, src_mask=torch.ones(2, 6, dtype=torch.bool))
    assert loss.ndim == 0
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.generate(src, tgt[:, :1], 4).shape == (2, 4)


def tiny_xtransformer(**kwargs):
    sizes = {"num_tokens": 9, "depth": 1, "max_seq_len": 8}
    sides = {f"{side}_{key}": value for side in ("enc", "dec") for key, value in sizes.items()}
    return XTransformer(dim=16, **sides, **kwargs)


def test_encoder_decoder_mask_alias_conflict():
    model = tiny_xtransformer()
    src = torch.randint(0, 9, (1, 6))
    mask = torch.ones(1, 6, dtype=torch.bool)
    with pytest.raises(TypeError, match="either 'mask' or 'src_mask'"):
        model(src, src, mask=mask, src_mask=mask)


def test_encoder_decoder_source_padding_does_not_leak():
    torch.manual_seed(0)
    model = tiny_xtransformer().eval()
    src, tgt = torch.randint(0, 9, (1, 6)), torch.randint(0, 9, (1, 5))
    mask = torch.tensor([[True] * 4 + [False] * 2])
    changed = src.clone()
    changed[0, 4:] = (changed[0, 4:] + 1) % 9
    torch.testing.assert_close(model(src, tgt, mask=mask), model(changed, tgt, mask=mask))


def test_cross_attender_and_encoder_on_vectors():
    encoder, cross = Encoder(dim=16, depth=1), CrossAttender(dim=16, depth=1)
    context = encoder(torch.randn(2, 5, 16), mask=torch.ones(2, 5, dtype=torch.bool))
    out = cross(torch.randn(2, 1, 16), context=context, context_mask=torch.ones(2, 5).bool())
    assert out.shape == (2, 1, 16)


def test_vit_classifies_or_embeds():
    vit = ViTransformerWrapper(
        image_size=16, patch_size=4, num_classes=7, attn_layers=Encoder(dim=16, depth=1)
    )
    img = torch.randn(2, 3, 16, 16)
    assert vit(img).shape == (2, 7)
    assert vit(img, return_embeddings=True).shape == (2, 16, 16)


def test_continuous_wrapper_shapes():
    model = ContinuousTransformerWrapper(
        dim_in=3, dim_out=5, max_seq_len=8, attn_layers=small_decoder()
    )
    out = model(torch.randn(2, 6, 3), mask=torch.ones(2, 6, dtype=torch.bool))
    assert out.shape == (2, 6, 5)


def test_meta_device_construction_and_to_empty():
    with torch.device("meta"):
        model = TransformerWrapper(
            num_tokens=50000, max_seq_len=2048, attn_layers=Decoder(dim=1024, depth=4, heads=16)
        )
    assert all(p.is_meta for p in model.parameters())
    model = model.to_empty(device="cpu")
    assert not any(p.is_meta for p in model.parameters())


def test_gpt3_configuration_has_175b_parameters():
    with torch.device("meta"):
        gpt3 = TransformerWrapper(
            num_tokens=50000,
            max_seq_len=2048,
            attn_layers=Decoder(dim=12288, depth=96, heads=96, attn_dim_head=128),
        )
    assert 174e9 < sum(p.numel() for p in gpt3.parameters()) < 176e9


def test_fused_and_explicit_paths_agree_on_the_default_model():
    torch.manual_seed(0)
    model = TransformerWrapper(num_tokens=11, max_seq_len=8, attn_layers=small_decoder()).eval()
    x = torch.randint(0, 11, (2, 6))
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    assert all(b.branch.attend.fused for b in model.attn_layers.blocks[::2])
    fused = model(x, mask=mask)
    explicit, maps = model(x, mask=mask, return_attn=True)  # return_attn forces the explicit path
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)
    assert len(maps) == 2 and maps[0].shape == (2, 2, 6, 6)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(2, 2, 6))
