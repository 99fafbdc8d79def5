"""``reversible=True`` under Paddle: the hand-written backward pass (a PyLayer there) equals plain
autograd through the same coupling with dropout on (the RNG state is replayed per F and G), and
leaves the global RNG untouched. Parity with torch is in test_parity.py (the reversible rows)."""

from __future__ import annotations

import pytest

paddle = pytest.importorskip("paddle")

import numpy as np  # noqa: E402
from pd_x_transformers._src.layers import reversible  # noqa: E402

import pd_x_transformers as pdx  # noqa: E402

pytestmark = pytest.mark.paddle

DIM, HEADS, DIM_HEAD, BATCH, SEQ = 16, 2, 8, 2, 6


def stack_of(**kwargs):
    paddle.seed(0)
    stack = pdx.Decoder(
        dim=DIM, depth=3, heads=HEADS, attn_dim_head=DIM_HEAD, reversible=True, **kwargs
    )
    stack.to(dtype="float64")
    stack.train()
    return stack


def gradients(stack, x, seed=5):
    """The output and every parameter's gradient of a fixed projection, dropout seeded."""
    stack.clear_gradients(set_to_zero=False)
    x = x.detach()
    x.stop_gradient = False
    paddle.seed(seed)
    out = stack(x)
    weights = paddle.to_tensor(np.random.default_rng(2).standard_normal(out.shape))
    (out * weights).sum().backward()
    grads = {n: p.grad.numpy() for n, p in stack.named_parameters() if p.grad is not None}
    return out.numpy(), grads, x.grad.numpy()


@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["no_dropout", "dropout"])
def test_hand_written_backward_equals_plain_autograd(dropout, monkeypatch):
    stack = stack_of(attn_dropout=dropout, ff_dropout=dropout, rotary_pos_emb=True, ff_glu=True)
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal((BATCH, SEQ, DIM)))
    out, grads, x_grad = gradients(stack, x)
    with monkeypatch.context() as patch:
        patch.setattr(reversible.ReversibleFunction, "apply", lambda c, x, *rest: c.forward(x, x))
        expected_out, expected, expected_x_grad = gradients(stack, x)
    np.testing.assert_allclose(out, expected_out, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(x_grad, expected_x_grad, rtol=1e-10, atol=1e-10)
    assert grads.keys() == expected.keys() and grads
    for name, grad in grads.items():
        np.testing.assert_allclose(grad, expected[name], rtol=1e-10, atol=1e-10, err_msg=name)
    if dropout:  # the dropout really is active: another seed gives another output
        other, _, _ = gradients(stack, x, seed=6)
        assert not np.allclose(out, other)


def test_backward_leaves_the_global_rng_untouched():
    stack = stack_of(attn_dropout=0.5)
    paddle.seed(0)
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal((BATCH, SEQ, DIM)))
    x.stop_gradient = False
    out = stack(x)
    before = paddle.rand([8]).numpy()  # a draw from the state after the forward ...
    paddle.seed(0)
    out = stack(x)
    out.sum().backward()
    after = paddle.rand([8]).numpy()  # ... equals the draw after forward + backward
    np.testing.assert_array_equal(before, after)
