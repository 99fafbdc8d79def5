"""U-Net long skips (``unet_skips=True``, U-ViT 2209.12152)."""

from __future__ import annotations

import pytest
import torch

from x_transformers import Decoder, Encoder
from x_transformers.layers.unet import UNetSkips

DIM, TIGHT = 16, {"rtol": 1e-12, "atol": 1e-12}


def stack(kind=Encoder, depth=2, **kwargs):
    torch.manual_seed(0)
    return kind(dim=DIM, depth=depth, heads=2, attn_dim_head=8, **kwargs).double().eval()


def by_hand(model, x):
    """The plain blocks in a loop, with block j >= L - L//2 taking
    Linear(concat(input of block L-1-j, x))."""
    inputs, blocks = [], list(model.blocks)
    count, half = len(blocks), len(blocks) // 2
    for index, block in enumerate(blocks):
        inputs.append(x)
        if index >= count - half:
            combine = model.unet_skips.combines[index - (count - half)]
            x = combine(torch.cat((inputs[count - 1 - index], x), dim=-1))
        x, _ = block(x)
    return model.final_norm(x)


@pytest.mark.parametrize("kwargs", [{}, {"par_ratio": 2, "depth": 3}, {"macaron": True}])
def test_the_stack_equals_the_skips_by_hand(kwargs):
    model = stack(unet_skips=True, **kwargs)
    x = torch.randn(2, 5, DIM, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), by_hand(model, x), **TIGHT)
        plain = stack(**kwargs)
        plain.load_state_dict(model.state_dict(), strict=False)
        assert not torch.allclose(plain(x), model(x))


def test_the_pairs_mirror_the_plan():
    skips = UNetSkips(4, 5)  # blocks 0 1 | 2 | 3 4: 3 <- input of 1, 4 <- input of 0
    saved, x = [], [torch.full((1, 4), float(i)) for i in range(5)]
    with torch.no_grad():
        for combine in skips.combines:
            combine.weight.zero_()
            combine.weight[:, :4] = torch.eye(4)  # keep the skip only
            combine.bias.zero_()
        outputs = [skips(i, x[i], saved) for i in range(5)]
    assert [o[0, 0].item() for o in outputs] == [0.0, 1.0, 2.0, 1.0, 0.0]


def test_the_first_half_gets_gradient_through_the_skips():
    model = stack(Decoder, unet_skips=True).train()
    x = torch.randn(2, 5, DIM, dtype=torch.float64)
    model(x).pow(2).sum().backward()
    for combine in model.unet_skips.combines:
        assert combine.weight.grad[:, :DIM].abs().sum() > 0  # the skip half of the Linear


def test_reversible_is_refused_naming_both():
    with pytest.raises(ValueError, match="'reversible'.*'unet_skips'"):
        Encoder(dim=DIM, depth=2, unet_skips=True, reversible=True)


def test_a_single_block_is_refused():
    with pytest.raises(ValueError, match="'unet_skips' needs a plan of at least 2 blocks"):
        Encoder(dim=DIM, depth=1, unet_skips=True, custom_layers=("a",))
