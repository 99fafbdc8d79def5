"""Token shift: known values, causality, padding, per-block tuples."""

from __future__ import annotations

import pytest
import torch

from x_transformers import Decoder, Encoder, TransformerWrapper
from x_transformers.layers.shift_tokens import ShiftTokens, shift_right, shifts_per_block


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_shift_right_known_values():
    x = torch.arange(1.0, 5.0).reshape(1, 4, 1)
    assert shift_right(x, 1).flatten().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert shift_right(x, 3).flatten().tolist() == [0.0, 0.0, 0.0, 1.0]
    assert shift_right(x, 6).flatten().tolist() == [0.0, 0.0, 0.0, 0.0]


def test_chunk_k_is_shifted_by_k():
    # 6 features, shift 2: chunks [0:2] unshifted, [2:4] by one, [4:6] by two
    x = torch.arange(1.0, 4.0).reshape(1, 3, 1).repeat(1, 1, 6)  # position t holds t + 1
    out = ShiftTokens(6, 2)(x)
    assert out[0].tolist() == [
        [1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        [2.0, 2.0, 1.0, 1.0, 0.0, 0.0],
        [3.0, 3.0, 2.0, 2.0, 1.0, 1.0],
    ]


def test_uneven_width_keeps_every_feature():
    x = randn(1, 5, 7)
    out = ShiftTokens(7, 1)(x)  # chunks of 4 and 3 features
    torch.testing.assert_close(out[..., :4], x[..., :4])
    torch.testing.assert_close(out[:, 1:, 4:], x[:, :-1, 4:])
    assert torch.all(out[:, 0, 4:] == 0)


def test_padded_positions_never_leak():
    x = randn(1, 5, 4)
    mask = torch.tensor([[True, False, True, True, True]])
    out = ShiftTokens(4, 1)(x, mask)
    changed = x.clone()
    changed[0, 1] += 10.0
    out_changed = ShiftTokens(4, 1)(changed, mask)
    kept = mask[0].nonzero().flatten()
    torch.testing.assert_close(out[0, kept], out_changed[0, kept])
    assert torch.all(out[0, 2, 2:] == 0)  # what came from the padded position is zero


@pytest.mark.parametrize("shift_tokens", [1, 3, (3, 2, 1, 0)])
def test_decoder_position_t_never_sees_t_plus_1(shift_tokens):
    stack = Decoder(dim=16, depth=2, heads=2, shift_tokens=shift_tokens).double()
    x = randn(1, 6, 16).requires_grad_()
    out = stack(x) @ randn(16, seed=1)  # a random read-out (the sum of a LayerNorm is constant)
    for t in range(6):
        (grad,) = torch.autograd.grad(out[0, t], x, retain_graph=True)
        assert torch.all(grad[0, t + 1 :] == 0), f"position {t} sees the future"
        assert grad[0, : t + 1].abs().sum(-1).min() > 0


def test_encoder_with_shift_ignores_padding_anywhere():
    model = (
        TransformerWrapper(
            num_tokens=20,
            max_seq_len=8,
            attn_layers=Encoder(dim=16, depth=2, heads=2, shift_tokens=2),
        )
        .double()
        .eval()
    )
    x = torch.randint(0, 20, (1, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[True, True, False, True, True, True]])
    changed = x.clone()
    changed[0, 2] = (changed[0, 2] + 3) % 20
    kept = mask[0]
    torch.testing.assert_close(model(x, mask=mask)[0, kept], model(changed, mask=mask)[0, kept])
    assert not torch.allclose(model(x)[0, kept], model(changed)[0, kept])  # the mask matters


def test_an_int_shifts_every_block_and_a_tuple_each_block():
    stack = Decoder(dim=16, depth=2, heads=2, shift_tokens=1)
    assert [b.token_shift.max_shift for b in stack.blocks] == [1, 1, 1, 1]
    stack = Decoder(dim=16, depth=2, heads=2, shift_tokens=(2, 0, 1, 0))
    shifts = [0 if b.token_shift is None else b.token_shift.max_shift for b in stack.blocks]
    assert shifts == [2, 0, 1, 0]
    assert Decoder(dim=16, depth=2, heads=2).blocks[0].token_shift is None


def test_seed_example_tuple_has_one_value_per_block():
    stack = Decoder(dim=16, depth=6, heads=2, shift_tokens=(1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0))
    assert len(stack.blocks) == 12
    assert sum(b.token_shift is not None for b in stack.blocks) == 6


def test_tuple_length_counts_blocks_of_the_plan():
    stack = Encoder(dim=16, depth=1, heads=2, macaron=True, shift_tokens=(1, 0, 1))
    assert stack.layer_kinds == ("f", "a", "f")


@pytest.mark.parametrize("shift_tokens", [(1, 1), (1, 1, 1, 1, 1)])
def test_a_tuple_of_the_wrong_length_is_a_clear_error(shift_tokens):
    with pytest.raises(
        ValueError,
        match=rf"'shift_tokens' has {len(shift_tokens)} values but "
        r"the stack has 4 blocks",
    ):
        Decoder(dim=16, depth=2, heads=2, shift_tokens=shift_tokens)


@pytest.mark.parametrize("shift_tokens", [-1, (1, -1, 0, 0)])
def test_negative_shifts_are_refused(shift_tokens):
    with pytest.raises(ValueError, match="'shift_tokens' must be ints >= 0"):
        Decoder(dim=16, depth=2, heads=2, shift_tokens=shift_tokens)


def test_more_chunks_than_features_is_refused():
    with pytest.raises(ValueError, match="'shift_tokens'=4 splits the features into 5 chunks"):
        Decoder(dim=4, depth=1, heads=1, shift_tokens=4)


def test_shifts_per_block():
    assert shifts_per_block(2, 3) == (2, 2, 2)
    assert shifts_per_block((0, 1), 2) == (0, 1)
    assert ShiftTokens.supports_kv_cache is False
    assert ShiftTokens.kv_cache_keyword == "shift_tokens"
