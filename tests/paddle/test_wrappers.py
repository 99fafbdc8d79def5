"""The training and generation wrappers under Paddle equal torch's (issue 16): the losses and
every gradient of AutoregressiveWrapper, XLAutoregressiveWrapper, NonAutoregressiveWrapper and
ContinuousAutoregressiveWrapper, float64, the same weights; greedy XL generation and
continuous generation (dynamic, static and no cache)."""

from __future__ import annotations

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import torch  # noqa: E402

import pd_x_transformers as pdx  # noqa: E402
import x_transformers as xt  # noqa: E402
from tests.paddle.helpers import copy_weights, max_diff, to_numpy, to_paddle  # noqa: E402
from tests.paddle.test_parity import TOL  # noqa: E402

pytestmark = pytest.mark.paddle

NUM_TOKENS = 23


def _build(lib, name):
    def decoder(**kwargs):
        return lib.Decoder(dim=32, depth=2, heads=4, **kwargs)

    if name == "autoregressive":
        net = lib.TransformerWrapper(num_tokens=NUM_TOKENS, max_seq_len=16, attn_layers=decoder())
        return lib.AutoregressiveWrapper(net)
    if name == "xl":
        net = lib.TransformerWrapper(
            num_tokens=NUM_TOKENS,
            max_seq_len=4,
            max_mem_len=4,
            attn_layers=decoder(rel_pos_bias=True),
        )
        return lib.XLAutoregressiveWrapper(net)
    if name == "non_autoregressive":
        net = lib.TransformerWrapper(
            num_tokens=NUM_TOKENS + 1,
            max_seq_len=16,
            attn_layers=lib.Encoder(dim=32, depth=2, heads=4),
        )
        return lib.NonAutoregressiveWrapper(net, mask_id=NUM_TOKENS)
    net = lib.ContinuousTransformerWrapper(
        dim_in=5,
        dim_out=5,
        max_seq_len=16,
        probabilistic=name == "probabilistic",
        attn_layers=decoder(rotary_pos_emb=True),
    )
    return lib.ContinuousAutoregressiveWrapper(net)


def _pair(name):
    torch.manual_seed(0)
    torch_model = _build(xt, name).double()
    paddle_model = _build(pdx, name)
    paddle_model.to(dtype="float64")
    copy_weights(torch_model, paddle_model)
    return torch_model, paddle_model


def _inputs(name):
    generator = torch.Generator().manual_seed(4)
    if name in ("continuous", "probabilistic"):
        x = torch.randn(2, 10, 5, generator=generator, dtype=torch.float64)
        mask = torch.ones(2, 10, dtype=torch.bool)
        mask[1, -3:] = False
        return (x,), {"mask": mask}
    x = torch.randint(0, NUM_TOKENS, (2, 12), generator=generator)
    if name == "non_autoregressive":
        masked = torch.rand(2, 12, generator=generator) < 0.4
        masked[:, 0] = True
        return (x,), {"masked": masked}
    if name == "autoregressive":
        mask = torch.ones(2, 12, dtype=torch.bool)
        mask[0, -4:] = False
        return (x,), {"mask": mask}
    return (x,), {}


@pytest.mark.parametrize(
    "name", ["autoregressive", "xl", "non_autoregressive", "continuous", "probabilistic"]
)
def test_loss_and_gradients_equal(name):
    torch_model, paddle_model = _pair(name)
    args, kwargs = _inputs(name)
    expected = torch_model(*args, **kwargs)
    expected.backward()
    loss = paddle_model(
        *(to_paddle(a) for a in args), **{k: to_paddle(v) for k, v in kwargs.items()}
    )
    loss.backward()
    assert abs(float(loss) - float(expected)) <= TOL, (float(loss), float(expected))
    reference = dict(torch_model.named_parameters())
    for param_name, param in paddle_model.named_parameters():
        grad = reference[param_name].grad
        assert (grad is None) == (param.grad is None), param_name
        if grad is not None:
            scale = max(1.0, float(grad.abs().max()))
            assert max_diff(grad, param.grad) / scale <= TOL, param_name


def test_xl_greedy_generation_equal():
    torch_model, paddle_model = _pair("xl")
    with torch.no_grad():
        for param in torch_model.parameters():
            param.mul_(4.0)  # spread the logits: the tokens vary
    copy_weights(torch_model, paddle_model)
    prompt = torch.randint(0, NUM_TOKENS, (2, 6), generator=torch.Generator().manual_seed(1))
    expected = torch_model.generate(prompt, 9, temperature=0.0)
    tokens = paddle_model.generate(to_paddle(prompt), 9, temperature=0.0)
    np.testing.assert_array_equal(to_numpy(tokens), to_numpy(expected))
    assert len(np.unique(to_numpy(tokens))) > 2


@pytest.mark.parametrize(
    "cache", [{"cache_kv": True}, {"cache_kv": True, "cache_kind": "static"}, {"cache_kv": False}]
)
def test_continuous_generation_equal(cache):
    torch_model, paddle_model = _pair("continuous")
    start = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = torch_model.generate(start, 5, **cache)
    vectors = paddle_model.generate(to_paddle(start), 5, **cache)
    assert max_diff(expected, vectors) <= TOL


def test_probabilistic_generation_equal_at_temperature_zero():
    torch_model, paddle_model = _pair("probabilistic")
    start = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = torch_model.generate(start, 4, temperature=0.0)
    assert max_diff(expected, paddle_model.generate(to_paddle(start), 4, temperature=0.0)) <= TOL
    paddle.seed(0)
    sampled = paddle_model.generate(to_paddle(start), 4, temperature=1.0)
    assert tuple(sampled.shape) == (2, 4, 5) and np.isfinite(to_numpy(sampled)).all()


def test_non_autoregressive_generates_valid_tokens():
    _, paddle_model = _pair("non_autoregressive")
    paddle.seed(0)
    tokens = to_numpy(paddle_model.generate(batch_size=2, seq_len=8, steps=3))
    assert tokens.shape == (2, 8)
    assert ((tokens >= 0) & (tokens < NUM_TOKENS)).all()  # every mask position filled
