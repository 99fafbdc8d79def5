"""Logit filters and sampling as pure functions."""

from __future__ import annotations

import pytest
import torch

from x_transformers.generation.sampling import (
    min_p,
    resolve_filter,
    sample_next_token,
    top_k,
    top_p,
)

LOGITS = torch.tensor([[2.0, 1.0, 0.0, -1.0, 3.0]])


def kept(filtered):
    return torch.isfinite(filtered)[0].nonzero().flatten().tolist()


def test_top_k_keeps_exactly_k():
    assert sorted(kept(top_k(LOGITS, k=2))) == [0, 4]
    assert len(kept(top_k(LOGITS, frac_num_tokens=0.5))) == 3


def test_top_p_keeps_the_smallest_nucleus():
    probs = LOGITS.softmax(-1)[0]
    # 3.0 alone has p ~ 0.64 < 0.7; with 2.0 (p ~ 0.24) the nucleus reaches 0.7
    assert probs[4] < 0.7 < probs[4] + probs[0]
    assert sorted(kept(top_p(LOGITS, thres=0.7))) == [0, 4]
    assert kept(top_p(LOGITS, thres=0.5)) == [4]


def test_min_p_is_relative_to_the_top_probability():
    probs = LOGITS.softmax(-1)[0]
    expected = sorted((probs >= probs.max() * 0.3).nonzero().flatten().tolist())
    assert sorted(kept(min_p(LOGITS, min_p=0.3))) == expected


def test_zero_temperature_is_greedy():
    assert sample_next_token(LOGITS, temperature=0.0).item() == 4


def test_sampling_follows_the_distribution():
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]])).expand(20000, 3)
    samples = sample_next_token(logits, temperature=1.0, filter_logits_fn=None)
    freq = torch.bincount(samples, minlength=3).float() / samples.numel()
    torch.testing.assert_close(freq, torch.tensor([0.7, 0.2, 0.1]), atol=0.02, rtol=0)


def test_filtered_tokens_are_never_sampled():
    torch.manual_seed(0)
    logits = LOGITS.expand(500, 5)
    samples = sample_next_token(logits, filter_logits_fn="top_k", filter_kwargs={"k": 2})
    assert set(samples.tolist()) <= {0, 4}


def test_unknown_filter_name_suggests_one():
    with pytest.raises(ValueError, match="did you mean 'top_p'"):
        resolve_filter("top_pp")


def test_callable_filter_is_used():
    calls = []

    def only_first(logits):
        calls.append(True)
        out = torch.full_like(logits, float("-inf"))
        out[..., 1] = 0
        return out

    assert sample_next_token(LOGITS, filter_logits_fn=only_first).item() == 1
    assert calls
