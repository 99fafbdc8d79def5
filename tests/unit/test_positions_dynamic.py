"""Dynamic position bias: the per-distance MLP gathered into (h, i, j) equals the MLP applied to
every (query, key) distance; one module shared by all layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from x_transformers import Decoder, Encoder
from x_transformers.positional import DynamicPositionBias, PositionSpan

CPU = torch.device("cpu")


def reference_mlp(module: DynamicPositionBias, distance: torch.Tensor) -> torch.Tensor:
    """The MLP of one (float64) distance tensor (..., 1) -> (..., heads), written out."""
    h = distance
    for layer in module.hidden:
        h = nn.functional.silu(h @ layer.weight.double().t() + layer.bias.double())
    return h @ module.to_heads.weight.double().t() + module.to_heads.bias.double()


@pytest.mark.parametrize("log_distance", [False, True])
def test_bias_is_the_mlp_of_each_distance(log_distance):
    torch.manual_seed(0)
    module = DynamicPositionBias(8, 3, log_distance=log_distance)
    span = PositionSpan.for_lengths(4, num_keys=7, offset=10)  # queries 10..13, keys 7..13
    bias = module(span, CPU, torch.float64)
    assert bias.shape == (3, 4, 7)
    distance = (torch.arange(10, 14)[:, None] - torch.arange(7, 14)[None, :]).double()
    features = distance.sign() * distance.abs().log1p() if log_distance else distance
    expected = reference_mlp(module, features[..., None]).permute(2, 0, 1)
    torch.testing.assert_close(bias, expected)


def test_computes_in_float32_for_a_bfloat16_module():
    module = DynamicPositionBias(8, 2).to(torch.bfloat16)
    bias = module(PositionSpan.for_lengths(3), CPU, torch.float32)
    assert bias.dtype == torch.float32


def test_one_module_shared_by_all_layers():
    for stack in (Encoder, Decoder):
        layers = stack(dim=32, depth=3, heads=2, dynamic_pos_bias=True)
        assert sum(isinstance(m, DynamicPositionBias) for m in layers.modules()) == 1
        assert layers.positions.score_bias.log_distance is False
    layers = Decoder(dim=32, depth=1, heads=2, dynamic_pos_bias=True,
                     dynamic_pos_bias_log_distance=True)  # fmt: skip
    assert layers.positions.score_bias.log_distance is True
