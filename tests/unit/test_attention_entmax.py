"""entmax-1.5 against an independent reference: bisection on the threshold tau of
p_i = [z_i / 2 - tau]_+^2, sum_i p_i = 1 (the definition, 1909.00015), in float64."""

from __future__ import annotations

import pytest
import torch

from x_transformers import Decoder, TransformerWrapper
from x_transformers.attention.entmax import entmax15


def entmax15_by_bisection(z: torch.Tensor, steps: int = 200) -> torch.Tensor:
    """Brute force: sum_i [x_i - tau]_+^2 is decreasing in tau; it is >= 1 at tau = max - 1 and
    0 at tau = max, so bisection on that bracket finds the threshold."""
    x = z.double() / 2
    high = x.amax(dim=-1, keepdim=True)
    low = high - 1
    for _ in range(steps):
        tau = (low + high) / 2
        total = ((x - tau).clamp(min=0) ** 2).sum(dim=-1, keepdim=True)
        low = torch.where(total >= 1, tau, low)
        high = torch.where(total >= 1, high, tau)
    return (x - (low + high) / 2).clamp(min=0) ** 2


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_entmax15_matches_the_bisection_reference(n):
    torch.manual_seed(n)
    z = torch.randn(64, n, dtype=torch.float64) * 3
    torch.testing.assert_close(entmax15(z), entmax15_by_bisection(z), rtol=1e-9, atol=1e-12)


def test_entmax15_known_values():
    # two scores 2 apart: x = (1, 0) / shifted (0, -1); tau = -1 gives p = (1, 0) exactly
    assert entmax15(torch.tensor([2.0, 0.0])).tolist() == [1.0, 0.0]
    # equal scores: uniform
    torch.testing.assert_close(entmax15(torch.zeros(4)), torch.full((4,), 0.25))
    # scores 1 apart: x = (0, -1/2); (0 - tau)^2 + (-1/2 - tau)^2 = 1 -> tau = (-1/2 - sqrt(7)/2)/2
    tau = (-0.5 - 7**0.5 / 2) / 2
    expected = torch.tensor([tau**2, (-0.5 - tau) ** 2], dtype=torch.float64)
    torch.testing.assert_close(entmax15(torch.tensor([1.0, 0.0], dtype=torch.float64)), expected)


def test_entmax15_is_a_sparse_distribution():
    torch.manual_seed(0)
    z = torch.randn(200, 16, dtype=torch.float64) * 4
    p = entmax15(z)
    torch.testing.assert_close(p.sum(-1), torch.ones(200, dtype=torch.float64))
    assert (p >= 0).all()
    assert (p == 0).any(dim=-1).float().mean() > 0.9  # exact zeros, not tiny values
    assert (p.argmax(-1) == z.argmax(-1)).all()


def test_entmax15_ignores_masked_scores_filled_with_finfo_min():
    for dtype in (torch.float32, torch.float64):
        z = torch.randn(8, 6, dtype=dtype)
        masked = z.clone()
        masked[:, 3:] = torch.finfo(dtype).min
        p = entmax15(masked)
        assert torch.isfinite(p).all()
        assert (p[:, 3:] == 0).all()
        torch.testing.assert_close(p[:, :3], entmax15(z[:, :3]))


def test_entmax15_gradient_passes_gradcheck():
    torch.manual_seed(0)
    z = (torch.randn(5, 7, dtype=torch.float64) * 2).requires_grad_()
    assert torch.autograd.gradcheck(entmax15, (z,), eps=1e-6, atol=1e-7)


def test_entmax15_half_precision_is_computed_in_float32():
    z = torch.randn(4, 9)
    for dtype in (torch.float16, torch.bfloat16):
        p = entmax15(z.to(dtype))
        assert p.dtype == dtype
        torch.testing.assert_close(p.float(), entmax15(z), rtol=0, atol=1e-2)


def test_entmax15_attention_weights_have_exact_zeros_and_sum_to_one():
    model = TransformerWrapper(
        num_tokens=16,
        max_seq_len=12,
        attn_layers=Decoder(dim=16, depth=1, heads=2, attn_dim_head=8, attn_use_entmax15=True),
    ).eval()
    x = torch.randint(0, 16, (2, 12))
    _, maps = model(x, return_attn=True)
    weights = maps[0]
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 12))
    causal_zeros = torch.ones(12, 12).triu(1).bool()
    assert (weights[..., causal_zeros] == 0).all()
