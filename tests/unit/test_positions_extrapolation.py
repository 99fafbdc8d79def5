"""Length extrapolation: without absolute positions a model runs past ``max_seq_len``; learned
absolute positions refuse with a clear error. Positions stay float32 under mixed precision."""

from __future__ import annotations

import pytest
import torch

from x_transformers import ContinuousTransformerWrapper, Decoder, Encoder, TransformerWrapper

TRAIN_LEN = 16
SCHEMES = {
    "alibi": {"alibi_pos_bias": True},
    "dynamic": {"dynamic_pos_bias": True, "dynamic_pos_bias_log_distance": True},
    "xpos": {"rotary_xpos": True, "rotary_xpos_scale_base": 8},
    "t5": {"rel_pos_bias": True},
    "infused": {"position_infused_attn": True},
}


def decoder_model(**layer_kwargs):
    torch.manual_seed(0)
    return TransformerWrapper(
        num_tokens=32,
        max_seq_len=TRAIN_LEN,
        use_abs_pos_emb=False,
        attn_layers=Decoder(dim=32, depth=2, heads=4, attn_dim_head=8, **layer_kwargs),
    ).eval()


@pytest.mark.parametrize("scheme", list(SCHEMES), ids=list(SCHEMES))
def test_decoder_runs_at_four_times_the_training_length(scheme):
    model = decoder_model(**SCHEMES[scheme])
    x = torch.randint(0, 32, (2, 4 * TRAIN_LEN))
    with torch.no_grad():
        long = model(x)
        short = model(x[:, :TRAIN_LEN])
    assert long.shape == (2, 4 * TRAIN_LEN, 32)
    assert torch.isfinite(long).all()
    # causal and positions counted from the start: the first TRAIN_LEN outputs do not change
    torch.testing.assert_close(long[:, :TRAIN_LEN], short, rtol=1e-4, atol=1e-4)


def test_xpos_stays_finite_far_beyond_its_scale_base():
    model = decoder_model(rotary_xpos=True, rotary_xpos_scale_base=4)
    with torch.no_grad():
        out = model(torch.randint(0, 32, (1, 256)))
    assert torch.isfinite(out).all()


def test_learned_absolute_positions_refuse_longer_sequences_clearly():
    torch.manual_seed(0)
    model = TransformerWrapper(
        num_tokens=32, max_seq_len=TRAIN_LEN, attn_layers=Decoder(dim=32, depth=1, heads=2)
    )
    model(torch.randint(0, 32, (1, TRAIN_LEN)))
    with pytest.raises(ValueError, match=r"max_seq_len=16.*use_abs_pos_emb=False"):
        model(torch.randint(0, 32, (1, TRAIN_LEN + 1)))


def test_sinusoidal_absolute_positions_have_no_length_limit():
    torch.manual_seed(0)
    model = TransformerWrapper(
        num_tokens=32,
        max_seq_len=TRAIN_LEN,
        sinusoidal_pos_emb=True,
        attn_layers=Encoder(dim=32, depth=1, heads=2),
    )
    assert sum(p.numel() for p in model.stem.parameters()) == 0
    assert torch.isfinite(model(torch.randint(0, 32, (1, 3 * TRAIN_LEN)))).all()


def test_continuous_wrapper_without_absolute_positions_extrapolates():
    torch.manual_seed(0)
    model = ContinuousTransformerWrapper(
        dim_in=4,
        dim_out=3,
        max_seq_len=TRAIN_LEN,
        use_abs_pos_emb=False,
        attn_layers=Decoder(dim=32, depth=1, heads=2, alibi_pos_bias=True),
    )
    assert model(torch.randn(1, 2 * TRAIN_LEN, 4)).shape == (1, 2 * TRAIN_LEN, 3)


def test_positions_are_float32_under_bfloat16_autocast():
    layers = Decoder(dim=32, depth=1, heads=4, rotary_pos_emb=True, dynamic_pos_bias=True)
    x = torch.randn(1, 8, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        positions = layers.positions(8, offset=3000, device=x.device, dtype=x.dtype)
        out = layers(x)
    assert positions.rotation.query_cos.dtype == torch.float32
    assert positions.bias.dtype == torch.float32
    reference = layers.positions(8, offset=3000, device=x.device, dtype=x.dtype)
    torch.testing.assert_close(positions.rotation.query_cos, reference.rotation.query_cos)
    torch.testing.assert_close(positions.bias, reference.bias)
    assert torch.isfinite(out).all()


def test_a_bfloat16_model_gets_its_bias_in_bfloat16():
    layers = Decoder(dim=32, depth=1, heads=4, rotary_xpos=True, alibi_pos_bias=True)
    layers = layers.to(torch.bfloat16)
    out = layers(torch.randn(1, 8, 32, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
