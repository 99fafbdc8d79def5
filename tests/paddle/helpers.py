"""Shared pieces of the Paddle tests: the same model in both frameworks, with the same weights.

Import this module only after ``pytest.importorskip("paddle")``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import paddle
import torch

import pd_x_transformers as pdx
from pd_x_transformers._bridge import torch_module
from tests.feature_matrix import DEPTH, DIM, DIM_HEAD, HEADS, MAX_SEQ_LEN, NUM_TOKENS, build_model


def to_paddle(tensor: torch.Tensor) -> paddle.Tensor:
    return paddle.to_tensor(tensor.detach().cpu().numpy())


def to_numpy(tensor) -> np.ndarray:
    if isinstance(tensor, torch.Tensor):
        return tensor.detach().cpu().numpy()
    return tensor.numpy()


def max_diff(a, b) -> float:
    return float(np.abs(to_numpy(a) - to_numpy(b)).max())


def copy_weights(torch_model: torch.nn.Module, paddle_model) -> None:
    """The torch model's state dict into the paddle model: same names, same shapes (strict)."""
    source = torch_model.state_dict()
    target = paddle_model.state_dict()
    assert sorted(source) == sorted(target), (
        f"state-dict names differ: torch only {sorted(set(source) - set(target))}, "
        f"paddle only {sorted(set(target) - set(source))}"
    )
    for name, value in source.items():
        assert list(value.shape) == list(target[name].shape), name
    missing, unexpected = paddle_model.set_state_dict({k: to_paddle(v) for k, v in source.items()})
    assert not missing and not unexpected, (missing, unexpected)


def paddle_model_like(case, kind: str, dtype: str = "float64"):
    """The feature-matrix model of ``case`` built by pd_x_transformers (random weights)."""
    stack = pdx.Encoder if kind == "encoder" else pdx.Decoder
    layer_kwargs = {"attn_dim_head": DIM_HEAD, **case.layer_kwargs}
    paddle.seed(0)
    model = pdx.TransformerWrapper(
        num_tokens=NUM_TOKENS,
        max_seq_len=MAX_SEQ_LEN,
        attn_layers=stack(dim=DIM, depth=DEPTH, heads=HEADS, **layer_kwargs),
        **case.wrapper_kwargs,
    )
    model.to(dtype=dtype)
    return model


def build_pair(case, kind: str):
    """(torch model, paddle model) for a feature-matrix row: float64, eval, the same weights."""
    torch_model = build_model(case, kind)
    paddle_model = paddle_model_like(case, kind)
    copy_weights(torch_model, paddle_model)
    paddle_model.eval()
    return torch_model, paddle_model


def _exact_layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """LayerNorm by the textbook formula (mean, biased variance, eps inside the root)."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    axes = list(range(-len(normalized_shape), 0))
    mean = x.mean(axis=axes, keepdim=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdim=True)
    y = (x - mean) / paddle.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


@contextlib.contextmanager
def exact_layer_norms(model):
    """Within the context, every LayerNorm of ``model`` (the ``paddle.nn.LayerNorm`` layers and
    the shared source's ``F.layer_norm`` calls) computes the textbook formula instead of Paddle's
    float64 ``layer_norm`` kernel, which loses precision as the variance of its input shrinks
    (measured against torch's: 5e-13 at std 1, 1.3e-9 at std 0.02, 1.3e-8 at std 1e-3). Tests
    only: the Paddle edition itself uses Paddle's kernel."""
    functional = torch_module("torch.nn.functional")
    saved = functional.__dict__.get("layer_norm")
    layers = [m for m in model.sublayers(include_self=True) if isinstance(m, paddle.nn.LayerNorm)]
    for layer in layers:
        layer.forward = lambda x, layer=layer: _exact_layer_norm(
            x, layer._normalized_shape, layer.weight, layer.bias, layer._epsilon
        )
    functional.__dict__["layer_norm"] = _exact_layer_norm
    try:
        yield
    finally:
        functional.__dict__["layer_norm"] = saved
        for layer in layers:
            del layer.forward
