"""The training wrappers' losses and the core generation loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from x_transformers import (
    AutoregressiveWrapper,
    ContinuousAutoregressiveWrapper,
    ContinuousTransformerWrapper,
    Decoder,
    Encoder,
    TransformerWrapper,
)
from x_transformers.generation.autoregressive import forgetful_causal_mask
from x_transformers.generation.loop import pad_after_eos


def gpt(num_tokens=13, max_seq_len=12):
    torch.manual_seed(0)
    return TransformerWrapper(
        num_tokens=num_tokens,
        max_seq_len=max_seq_len,
        attn_layers=Decoder(dim=16, depth=2, heads=2),
    )


def test_loss_is_next_token_cross_entropy():
    wrapper = AutoregressiveWrapper(gpt())
    x = torch.randint(0, 13, (2, 8))
    logits = wrapper.net(x[:, :-1])
    expected = F.cross_entropy(logits.transpose(1, 2), x[:, 1:])
    torch.testing.assert_close(wrapper(x), expected)


def test_padded_targets_do_not_count():
    wrapper = AutoregressiveWrapper(gpt())
    x = torch.randint(0, 13, (1, 8))
    mask = torch.tensor([[True] * 5 + [False] * 3])
    changed = x.clone()
    changed[0, 5:] = (changed[0, 5:] + 1) % 13
    torch.testing.assert_close(wrapper(x, mask=mask), wrapper(changed, mask=mask))


def test_ignore_index_is_respected():
    wrapper = AutoregressiveWrapper(gpt(), ignore_index=0)
    x = torch.randint(1, 13, (1, 8))
    x[0, -1] = 0
    logits = wrapper.net(x[:, :-1])
    expected = F.cross_entropy(logits[:, :-1].transpose(1, 2), x[:, 1:-1])
    torch.testing.assert_close(wrapper(x), expected)


def test_forgetful_causal_mask_hides_the_requested_fraction_but_never_the_first_token():
    torch.manual_seed(0)
    keep = forgetful_causal_mask(4, 20, 0.15, "cpu")
    assert keep[:, 0].all()
    assert ((~keep).sum(-1) == 3).all()


def test_forgetful_causal_mask_only_in_training():
    wrapper = AutoregressiveWrapper(gpt(), mask_prob=0.5).eval()
    x = torch.randint(0, 13, (2, 8))
    torch.testing.assert_close(wrapper(x), AutoregressiveWrapper(wrapper.net)(x))
    wrapper.train()
    assert wrapper(x).isfinite()


def test_generate_returns_only_new_tokens():
    wrapper = AutoregressiveWrapper(gpt())
    assert wrapper.generate(torch.randint(0, 13, (2, 3)), 5).shape == (2, 5)
    assert wrapper.generate(torch.randint(0, 13, (3,)), 5).shape == (5,)


def test_generation_slides_past_max_seq_len():
    wrapper = AutoregressiveWrapper(gpt(max_seq_len=6))
    assert wrapper.generate(torch.randint(0, 13, (1, 4)), 10, temperature=0.0).shape == (1, 10)


def test_greedy_generation_matches_argmax_of_the_full_forward():
    wrapper = AutoregressiveWrapper(gpt()).eval()
    prompt = torch.randint(0, 13, (2, 3))
    out = wrapper.generate(prompt, 4, temperature=0.0)
    seq = torch.cat((prompt, out), dim=1)
    expected = wrapper.net(seq[:, :-1]).argmax(-1)[:, 2:]
    assert torch.equal(out, expected)


def test_pad_after_eos():
    tokens = torch.tensor([[5, 2, 7, 2], [1, 1, 1, 1]])
    assert pad_after_eos(tokens, 2, 0).tolist() == [[5, 2, 0, 0], [1, 1, 1, 1]]


def test_generation_stops_at_eos_and_pads():
    wrapper = AutoregressiveWrapper(gpt(), pad_value=12)
    out = wrapper.generate(
        torch.randint(0, 13, (4, 2)),
        6,
        eos_token=3,
        filter_logits_fn="top_k",
        filter_kwargs={"k": 3},
    )
    assert out.shape == (4, 6)
    for row in out.tolist():
        if 3 in row:
            assert all(t == 12 for t in row[row.index(3) + 1 :])


def test_generation_restores_training_mode():
    wrapper = AutoregressiveWrapper(gpt()).train()
    wrapper.generate(torch.randint(0, 13, (1, 2)), 2)
    assert wrapper.net.training


def test_autoregressive_wrapper_needs_a_decoder():
    encoder = TransformerWrapper(num_tokens=5, max_seq_len=4, attn_layers=Encoder(dim=8, depth=1))
    with pytest.raises(ValueError, match="causal"):
        AutoregressiveWrapper(encoder)


def test_continuous_wrapper_loss_and_generation_shapes():
    net = ContinuousTransformerWrapper(
        dim_in=4, dim_out=4, max_seq_len=12, attn_layers=Decoder(dim=16, depth=1, heads=2)
    )
    wrapper = ContinuousAutoregressiveWrapper(net)
    x = torch.randn(2, 6, 4)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    loss = wrapper(x, mask=mask)
    expected_terms = F.mse_loss(net(x[:, :-1], mask=mask[:, :-1]), x[:, 1:], reduction="none")
    weights = mask[:, 1:, None].float().expand_as(expected_terms)
    torch.testing.assert_close(loss, (expected_terms * weights).sum() / weights.sum())
    assert wrapper.generate(torch.randn(2, 3, 4), 5).shape == (2, 5, 4)
    assert wrapper.generate(torch.randn(1, 4), 5).shape == (5, 4)
    assert wrapper.generate(torch.randn(4), 5).shape == (5, 4)
