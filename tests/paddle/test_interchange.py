"""Weight interchange (issue 16): a model saved by one framework (``save_pretrained``:
config.json + model.safetensors) loads in the other with the same weights, bit for bit, and the
same outputs (exactly, when both sides run in the same framework; within the parity tolerance of
tests/paddle/test_parity.py across frameworks)."""

from __future__ import annotations

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import torch  # noqa: E402

import pd_x_transformers as pdx  # noqa: E402
import x_transformers as xt  # noqa: E402
from tests.paddle.helpers import max_diff, to_numpy, to_paddle  # noqa: E402
from tests.paddle.test_parity import TOL  # noqa: E402

pytestmark = pytest.mark.paddle


def _token_model(lib):
    return lib.TransformerWrapper(
        num_tokens=29,
        max_seq_len=16,
        tie_embedding=True,
        attn_layers=lib.Decoder(dim=32, depth=2, heads=4, rotary_pos_emb=True, attn_kv_heads=2),
    )


def _xtransformer(lib):
    return lib.XTransformer(
        dim=32,
        enc_num_tokens=29,
        enc_depth=1,
        enc_heads=4,
        enc_max_seq_len=16,
        dec_num_tokens=29,
        dec_depth=1,
        dec_heads=4,
        dec_max_seq_len=16,
        tie_token_emb=True,
    )


def _vit(lib):
    return lib.ViTransformerWrapper(
        image_size=16,
        patch_size=8,
        num_classes=5,
        attn_layers=lib.Encoder(dim=32, depth=1, heads=4),
    )


def _continuous(lib):
    return lib.ContinuousTransformerWrapper(
        dim_in=6, dim_out=3, max_seq_len=16, attn_layers=lib.Decoder(dim=32, depth=1, heads=4)
    )


def _inputs(name, framework):
    generator = torch.Generator().manual_seed(2)
    if name == "token":
        args = (torch.randint(0, 29, (2, 8), generator=generator),)
    elif name == "xtransformer":
        args = tuple(torch.randint(0, 29, (2, 8), generator=generator) for _ in range(2))
    elif name == "vit":
        args = (torch.randn(2, 3, 16, 16, generator=generator, dtype=torch.float64),)
    else:
        args = (torch.randn(2, 8, 6, generator=generator, dtype=torch.float64),)
    return args if framework == "torch" else tuple(to_paddle(a) for a in args)


MODELS = {
    "token": _token_model,
    "xtransformer": _xtransformer,
    "vit": _vit,
    "continuous": _continuous,
}


def _same_weights(torch_model, paddle_model):
    theirs = paddle_model.state_dict()
    ours = torch_model.state_dict()
    assert sorted(ours) == sorted(theirs)
    for name, value in ours.items():
        np.testing.assert_array_equal(to_numpy(value), to_numpy(theirs[name]), err_msg=name)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_to_paddle_and_back(name, tmp_path):
    torch.manual_seed(0)
    torch_model = MODELS[name](xt).double().eval()
    torch_model.save_pretrained(tmp_path / "torch")

    paddle_model = getattr(pdx, type(torch_model).__name__).from_pretrained(tmp_path / "torch")
    assert isinstance(paddle_model, paddle.nn.Layer) and not paddle_model.training
    _same_weights(torch_model, paddle_model)
    with torch.no_grad():
        expected = torch_model(*_inputs(name, "torch"))
    got = paddle_model(*_inputs(name, "paddle"))
    assert max_diff(expected, got) <= TOL

    paddle_model.save_pretrained(tmp_path / "paddle")
    again = getattr(xt, type(torch_model).__name__).from_pretrained(tmp_path / "paddle")
    _same_weights(again, paddle_model)
    with torch.no_grad():
        np.testing.assert_array_equal(to_numpy(again(*_inputs(name, "torch"))), to_numpy(expected))


def test_paddle_first(tmp_path):
    """A model created (initialised) by Paddle, float32 as Paddle defaults, saved and loaded by
    torch and by Paddle."""
    paddle.seed(1)
    paddle_model = _token_model(pdx)
    paddle_model.eval()
    paddle_model.save_pretrained(tmp_path)
    torch_model = xt.TransformerWrapper.from_pretrained(tmp_path)
    assert next(torch_model.parameters()).dtype == torch.float32
    _same_weights(torch_model, paddle_model)
    reloaded = pdx.TransformerWrapper.from_pretrained(tmp_path)
    tokens = _inputs("token", "paddle")
    np.testing.assert_array_equal(to_numpy(reloaded(*tokens)), to_numpy(paddle_model(*tokens)))
    with torch.no_grad():
        expected = torch_model(*_inputs("token", "torch"))
    assert max_diff(expected, paddle_model(*tokens)) <= 1e-5  # float32


def test_wrong_class_is_refused(tmp_path):
    torch.manual_seed(0)
    _token_model(xt).save_pretrained(tmp_path)
    with pytest.raises(Exception, match="XTransformer"):
        pdx.XTransformer.from_pretrained(tmp_path)
