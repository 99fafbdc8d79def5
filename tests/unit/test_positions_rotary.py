"""Rotary embedding and xPos against their definitions (complex numbers, the xPos scale)."""

from __future__ import annotations

import pytest
import torch

from x_transformers.positional import PositionSpan, RotaryEmbedding, apply_rotation
from x_transformers.positional.rotary import XPOS_GAMMA

F64 = torch.float64


def complex_rotary(x: torch.Tensor, positions: torch.Tensor, rotated: int, theta=10000.0):
    """RoFormer: feature pairs (k, k + r/2) as complex numbers, times exp(i p theta_k)."""
    half = rotated // 2
    theta_k = theta ** (-2.0 * torch.arange(half, dtype=F64) / rotated)
    z = torch.complex(x[..., :half], x[..., half:rotated])
    z = z * torch.polar(torch.ones_like(theta_k), positions[:, None] * theta_k[None, :])
    return torch.cat((z.real, z.imag, x[..., rotated:]), dim=-1)


@pytest.mark.parametrize("rotated", [8, 4, 2])
def test_rotation_equals_complex_formula(rotated):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 8, dtype=F64)
    span = PositionSpan.for_lengths(7, offset=5, num_new_keys=7)  # keys of positions 5..11
    rotation = RotaryEmbedding(rotated)(span, x.device, F64)
    positions = torch.arange(5, 12, dtype=F64)
    expected = complex_rotary(x, positions, rotated)
    torch.testing.assert_close(rotation.rotate_queries(x), expected)
    torch.testing.assert_close(rotation.rotate_keys(x), expected)
    # partial rotary leaves the other features untouched
    torch.testing.assert_close(rotation.rotate_queries(x)[..., rotated:], x[..., rotated:])


def test_rotary_scores_depend_on_distance_only():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16, dtype=F64), torch.randn(1, 1, 1, 16, dtype=F64)
    rotary = RotaryEmbedding(16, theta=100.0)

    def score(m: int, n: int) -> torch.Tensor:
        span = PositionSpan(1, 1, query_start=m, key_start=n)
        rotation = rotary(span, q.device, F64)
        return (rotation.rotate_queries(q) * rotation.rotate_keys(k)).sum()

    torch.testing.assert_close(score(7, 3), score(107, 103))
    torch.testing.assert_close(score(3, 7), score(1003, 1007))
    assert not torch.allclose(score(7, 3), score(7, 4))


def test_xpos_scale_matches_its_definition():
    """zeta_k = (2k / r + gamma) / (1 + gamma); queries x zeta^(m / B), keys x zeta^(-n / B)."""
    rotated, base = 4, 8.0
    rotary = RotaryEmbedding(rotated, theta=10.0, xpos_scale_base=base)
    zeta = torch.tensor([(0 + XPOS_GAMMA) / 1.4, (0.5 + XPOS_GAMMA) / 1.4], dtype=F64)
    torch.testing.assert_close(zeta, torch.tensor([0.4 / 1.4, 0.9 / 1.4], dtype=F64))
    m, n = 13, 4
    span = PositionSpan(1, 1, query_start=m, key_start=n)
    rotation = rotary(span, torch.device("cpu"), F64)
    theta_k = torch.tensor([1.0, 10.0**-0.5], dtype=F64)
    zeta2, theta2 = zeta.repeat(2), theta_k.repeat(2)
    torch.testing.assert_close(rotation.query_cos[0], torch.cos(m * theta2) * zeta2 ** (m / base))
    signs = torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=F64)  # the first half of each pair
    expected_sin = signs * torch.sin(m * theta2) * zeta2 ** (m / base)
    torch.testing.assert_close(rotation.query_sin[0], expected_sin)
    torch.testing.assert_close(rotation.key_cos[0], torch.cos(n * theta2) * zeta2 ** (-n / base))
    # a unit query and key on feature 0: the score is zeta_0^((m - n) / B) cos((m - n) theta_0)
    e0 = torch.zeros(1, 1, 1, rotated, dtype=F64)
    e0[..., 0] = 1.0
    score = (rotation.rotate_queries(e0) * rotation.rotate_keys(e0)).sum()
    expected = zeta[0] ** ((m - n) / base) * torch.cos((m - n) * theta_k[0])
    torch.testing.assert_close(score, expected)


def test_xpos_scores_decay_with_distance_and_are_relative():
    rotary = RotaryEmbedding(8, xpos_scale_base=4)
    q = torch.ones(1, 1, 1, 8, dtype=F64)

    def score(m: int, n: int) -> torch.Tensor:
        rotation = rotary(PositionSpan(1, 1, m, n), q.device, F64)
        return (rotation.rotate_queries(q) * rotation.rotate_keys(q)).sum()

    torch.testing.assert_close(score(20, 10), score(520, 510))
    # with theta -> many angles, compare the envelope: same-position score is the largest
    assert score(10, 10) > score(10, 2).abs()


def test_new_keys_of_a_cache_take_the_query_positions():
    """With a KV cache the keys computed in this call are the new ones, at the query positions;
    with XL memories they are all the keys of the span (memory before the queries)."""
    torch.manual_seed(0)
    rotary = RotaryEmbedding(8, xpos_scale_base=16)
    full_span = PositionSpan.for_lengths(10)
    full = rotary(full_span, torch.device("cpu"), F64)
    k = torch.randn(1, 2, 10, 8, dtype=F64)
    rotated_full = full.rotate_keys(k)
    cached = rotary(PositionSpan.for_lengths(3, offset=7, num_new_keys=3), k.device, F64)
    torch.testing.assert_close(cached.rotate_keys(k[..., 7:, :]), rotated_full[..., 7:, :])
    memory = rotary(PositionSpan.for_lengths(3, offset=7), k.device, F64)
    torch.testing.assert_close(memory.rotate_keys(k), rotated_full)  # XL: memory + new
    # the span, not the number of keys, says where the keys sit
    with pytest.raises(ValueError, match="declares 3 keys"):
        cached.rotate_keys(k)
    # a static cache: keys span the whole buffer from 0, the new keys still sit at the queries
    static = rotary(PositionSpan(3, 16, torch.tensor(7), 0, num_new_keys=3), k.device, F64)
    torch.testing.assert_close(static.rotate_keys(k[..., 7:, :]), rotated_full[..., 7:, :])
    torch.testing.assert_close(
        static.rotate_queries(k[..., 7:, :]), full.rotate_queries(k)[..., 7:, :]
    )


def test_rotation_keeps_the_input_dtype_and_computes_in_float32():
    rotary = RotaryEmbedding(8)
    span = PositionSpan.for_lengths(4, offset=30000)
    rotation = rotary(span, torch.device("cpu"), torch.float32)
    assert rotation.query_cos.dtype == torch.float32
    x = torch.randn(1, 1, 4, 8, dtype=torch.bfloat16)
    out = rotation.rotate_queries(x)
    assert out.dtype == torch.bfloat16
    expected = apply_rotation(x.double(), rotation.query_cos.double(), rotation.query_sin.double())
    torch.testing.assert_close(out.double(), expected, atol=2e-2, rtol=2e-2)


def test_rotary_dimension_must_be_even():
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7)


SPANS = [
    PositionSpan.for_lengths(10),  # a plain forward
    PositionSpan.for_lengths(1, offset=300, num_new_keys=1),  # a decoding step past the table
    PositionSpan.for_lengths(5, num_keys=12, offset=7),  # Transformer-XL memories
    PositionSpan.for_lengths(3, offset=4, row_offset=torch.tensor([0, 2])),  # computed: per row
    PositionSpan.for_lengths(2, num_keys=6, offset=torch.tensor(4), num_new_keys=2),  # static
]


@pytest.mark.parametrize("xpos", [None, 16.0], ids=["rotary", "xpos"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_table_slices_equal_the_computed_rotation(xpos, dtype):
    rotary = RotaryEmbedding(8, xpos_scale_base=xpos)
    for span in SPANS:
        from_table = rotary(span, torch.device("cpu"), dtype)
        computed = rotary._computed(span, torch.device("cpu"), dtype)
        for name in ("query_cos", "query_sin", "key_cos", "key_sin"):
            torch.testing.assert_close(
                getattr(from_table, name), getattr(computed, name), rtol=0, atol=0
            )


def test_decoding_steps_slice_one_table_per_device_and_dtype():
    rotary = RotaryEmbedding(8)
    cpu = torch.device("cpu")
    first = rotary(PositionSpan.for_lengths(4), cpu, torch.float32)
    table = rotary._tables[(cpu, torch.float32)]
    for offset in range(4, 40):
        step = rotary(
            PositionSpan.for_lengths(1, offset=offset, num_new_keys=1), cpu, torch.float32
        )
        assert (
            step.query_cos.untyped_storage().data_ptr()
            == table.query_cos.untyped_storage().data_ptr()
        )
    assert rotary._tables[(cpu, torch.float32)] is table and first.query_cos.shape == (4, 8)
    assert table.key_cos is table.query_cos  # plain rotary: one copy for queries and keys
    rotary(PositionSpan.for_lengths(4), cpu, F64)
    assert set(rotary._tables) == {(cpu, torch.float32), (cpu, F64)}
    rotary.double()  # moving the module drops the tables
    assert rotary._tables == {}


def test_a_table_built_under_inference_mode_serves_a_training_forward():
    from x_transformers import Decoder, TransformerWrapper

    model = TransformerWrapper(
        num_tokens=16,
        max_seq_len=32,
        attn_layers=Decoder(dim=16, depth=1, heads=2, rotary_pos_emb=True),
    )
    x = torch.randint(0, 16, (2, 8))
    with torch.inference_mode():
        expected = model(x)
    out = model(x)  # reuses the table: must not be an inference tensor saved for backward
    out.sum().backward()
    torch.testing.assert_close(out.detach(), expected)


@pytest.mark.parametrize("rotated", [8, 4])
def test_a_decoding_step_rotates_query_and_key_together_exactly(rotated):
    """One query and one key at the same position are rotated in one call on the stacked heads;
    it gives exactly the separate rotations (grouped key heads, partial rotary too)."""
    rotary = RotaryEmbedding(rotated)
    rotation = rotary(PositionSpan.for_lengths(1, 8, 7, num_new_keys=1), "cpu", torch.float32)
    assert rotation.key_cos is rotation.query_cos  # a decoding step shares the table slices
    q, k = torch.randn(2, 4, 1, 8), torch.randn(2, 2, 1, 8)
    got_q, got_k = rotation.rotate(q, k)
    assert torch.equal(got_q, rotation.rotate_queries(q))
    assert torch.equal(got_k, rotation.rotate_keys(k))
