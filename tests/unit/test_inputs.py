"""Bad input gets a clear exception that says what was expected."""

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
)


@pytest.fixture
def gpt():
    return TransformerWrapper(num_tokens=10, max_seq_len=8, attn_layers=Decoder(dim=16, depth=1))


@pytest.mark.parametrize("bad", [10, -1, 99])
def test_token_ids_out_of_range(gpt, bad):
    x = torch.zeros(1, 4, dtype=torch.long)
    x[0, 2] = bad
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        gpt(x)


def test_float_tokens_are_refused(gpt):
    with pytest.raises(TypeError, match="integer"):
        gpt(torch.zeros(1, 4))


def test_sequence_longer_than_max_seq_len(gpt):
    with pytest.raises(ValueError, match="max_seq_len=8"):
        gpt(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("shape", [(1, 5), (2, 4), (4,)])
def test_mask_of_wrong_shape(gpt, shape):
    with pytest.raises(ValueError, match=r"\(batch, seq_len\) = \(1, 4\)"):
        gpt(torch.zeros(1, 4, dtype=torch.long), mask=torch.ones(shape, dtype=torch.bool))


def test_mask_must_be_bool(gpt):
    with pytest.raises(TypeError, match="bool"):
        gpt(torch.zeros(1, 4, dtype=torch.long), mask=torch.ones(1, 4))


def test_attn_mask_of_wrong_shape(gpt):
    with pytest.raises(ValueError, match="attn_mask"):
        gpt(torch.zeros(1, 4, dtype=torch.long), attn_mask=torch.ones(3, 4, dtype=torch.bool))


def test_context_of_wrong_width():
    model = CrossAttender(dim=16, depth=1)
    with pytest.raises(ValueError, match=r"\(batch, context_len, 16\)"):
        model(torch.randn(1, 2, 16), context=torch.randn(1, 3, 8))


def test_context_is_required_and_refused_where_appropriate():
    with pytest.raises(ValueError, match="needs 'context'"):
        Decoder(dim=16, depth=1, cross_attend=True)(torch.randn(1, 2, 16))
    with pytest.raises(ValueError, match="cross_attend=True"):
        Encoder(dim=16, depth=1)(torch.randn(1, 2, 16), context=torch.randn(1, 3, 16))


def test_context_batch_mismatch():
    model = CrossAttender(dim=16, depth=1)
    with pytest.raises(ValueError, match="batch size"):
        model(torch.randn(2, 2, 16), context=torch.randn(1, 3, 16))


def test_dim_context_allows_a_narrower_context():
    model = Decoder(dim=16, depth=1, cross_attend=True, dim_context=8)
    assert model(torch.randn(1, 2, 16), context=torch.randn(1, 3, 8)).shape == (1, 2, 16)


def test_image_of_wrong_size():
    vit = ViTransformerWrapper(image_size=16, patch_size=8, attn_layers=Encoder(dim=16, depth=1))
    with pytest.raises(ValueError, match=r"\(batch, 3, 16, 16\)"):
        vit(torch.randn(1, 3, 32, 32))


def test_patch_size_must_divide_image_size():
    with pytest.raises(ValueError, match="divisible"):
        ViTransformerWrapper(image_size=16, patch_size=5, attn_layers=Encoder(dim=16, depth=1))


def test_vit_refuses_a_causal_stack():
    with pytest.raises(ValueError, match="non-causal"):
        ViTransformerWrapper(image_size=16, patch_size=8, attn_layers=Decoder(dim=16, depth=1))


def test_continuous_input_of_wrong_width():
    model = ContinuousTransformerWrapper(
        dim_in=3, max_seq_len=8, attn_layers=Encoder(dim=16, depth=1)
    )
    with pytest.raises(ValueError, match="dim_in=3"):
        model(torch.randn(1, 4, 5))


def test_attn_layers_must_be_a_stack():
    with pytest.raises(TypeError, match="attn_layers"):
        TransformerWrapper(num_tokens=4, max_seq_len=4, attn_layers=torch.nn.Linear(2, 2))
