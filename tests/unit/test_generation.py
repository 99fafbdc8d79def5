"""Generation: prompts of different lengths, eos stopping, sampling filters, beam search, the
sliding window past ``max_seq_len``, ``XTransformer.generate`` and the continuous wrapper."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from x_transformers import (
    AutoregressiveWrapper,
    ContinuousAutoregressiveWrapper,
    ContinuousTransformerWrapper,
    Decoder,
    TransformerWrapper,
    XTransformer,
)
from x_transformers.generation.decode import left_pad_prompts
from x_transformers.generation.loop import pad_after_eos

VOCAB = 23


def decoder_model(max_seq_len=16, **kwargs):
    wrapper_kwargs = {
        k: kwargs.pop(k) for k in ("use_abs_pos_emb", "num_memory_tokens") if k in kwargs
    }
    torch.manual_seed(0)
    net = TransformerWrapper(
        num_tokens=VOCAB,
        max_seq_len=max_seq_len,
        attn_layers=Decoder(dim=32, depth=2, heads=4, attn_dim_head=8, **kwargs),
        **wrapper_kwargs,
    )
    return AutoregressiveWrapper(net.double())


def prompt(batch=3, length=5, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (batch, length), generator=generator)


def greedy_by_long_pass(net, tokens, steps, attn_mask_fn=None):
    """Independent greedy reference: a full forward over everything so far at every step."""
    out = tokens
    with torch.no_grad():
        for _ in range(steps):
            n = out.shape[1]
            mask = None if attn_mask_fn is None else attn_mask_fn(n)
            next_token = net.eval()(out, attn_mask=mask)[:, -1].argmax(-1)
            out = torch.cat((out, next_token[:, None]), dim=1)
    return out[:, tokens.shape[1] :]


# --- prompts --------------------------------------------------------------------------------


def test_a_list_of_prompts_is_left_padded():
    batch = left_pad_prompts([torch.tensor([5, 6]), torch.tensor([7, 8, 9])], pad_value=0)
    assert batch.tokens.tolist() == [[0, 5, 6], [7, 8, 9]]
    assert batch.mask.tolist() == [[False, True, True], [True, True, True]]
    assert batch.start_positions.tolist() == [1, 0]


def test_prompt_lens_must_fit_the_batch():
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        left_pad_prompts(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 3]))
    full = left_pad_prompts(torch.zeros(2, 3, dtype=torch.long), torch.tensor([3, 3]))
    assert full.mask is None and full.start_positions is None


@pytest.mark.parametrize(
    "layer_kwargs",
    [
        pytest.param({}, id="absolute_positions"),
        pytest.param({"rotary_pos_emb": True, "use_abs_pos_emb": False}, id="rotary"),
        pytest.param({"alibi_pos_bias": True, "use_abs_pos_emb": False}, id="alibi"),
        pytest.param({"num_memory_tokens": 2}, id="memory_tokens"),
    ],
)
@pytest.mark.parametrize("cache_kv", [True, False])
def test_rows_of_different_lengths_get_what_they_get_alone(layer_kwargs, cache_kv):
    wrapper = decoder_model(**layer_kwargs)
    prompts = [prompt(1, n, seed=n)[0] for n in (2, 5, 3)]
    batched = wrapper.generate(prompts, 6, temperature=0.0, cache_kv=cache_kv)
    alone = torch.stack([wrapper.generate(p, 6, temperature=0.0) for p in prompts])
    assert torch.equal(batched, alone)
    # the same batch, left-padded by hand with the prompt lengths
    padded = torch.stack([F.pad(p, (5 - len(p), 0), value=3) for p in prompts])
    lens = torch.tensor([len(p) for p in prompts])
    by_lens = wrapper.generate(padded, 6, temperature=0.0, prompt_lens=lens, cache_kv=cache_kv)
    assert torch.equal(by_lens, alone)


def test_an_unbatched_prompt_gives_an_unbatched_result():
    wrapper = decoder_model()
    out = wrapper.generate(prompt(1)[0], 4, temperature=0.0)
    assert out.shape == (4,)
    assert torch.equal(out, wrapper.generate(prompt(1), 4, temperature=0.0)[0])


# --- stopping and sampling ------------------------------------------------------------------


def test_rows_stop_at_eos_independently():
    wrapper = decoder_model()
    free = wrapper.generate(prompt(), 8, temperature=0.0)
    eos = int(free[0, 2])
    stopped = wrapper.generate(prompt(), 8, temperature=0.0, eos_token=eos)
    assert torch.equal(stopped, pad_after_eos(free, eos, wrapper.pad_value))
    assert stopped.shape == (3, 8)
    first_eos = (free[0] == eos).nonzero()[0].item()
    assert (stopped[0, first_eos + 1 :] == wrapper.pad_value).all()


def test_generation_stops_when_every_row_is_done():
    wrapper = decoder_model()
    calls = []
    wrapper.net.register_forward_hook(lambda *args: calls.append(1))
    free = wrapper.generate(prompt(1), 8, temperature=0.0)
    assert len(calls) == 8  # prefill, then one step per token but the last
    calls.clear()
    out = wrapper.generate(prompt(1), 8, temperature=0.0, eos_token=int(free[0, 0]))
    assert len(calls) == 1  # the first token was the eos: no step after the prefill
    assert out.shape == (1, 8)


@pytest.mark.parametrize(
    "filter_logits_fn, filter_kwargs",
    [("top_k", {"k": 1}), ("top_p", {"thres": 1e-6}), ("min_p", {"min_p": 1.0})],
)
def test_the_tightest_filter_samples_greedily(filter_logits_fn, filter_kwargs):
    wrapper = decoder_model()
    greedy = wrapper.generate(prompt(), 6, temperature=0.0)
    torch.manual_seed(3)
    sampled = wrapper.generate(
        prompt(), 6, temperature=1.5, filter_logits_fn=filter_logits_fn, filter_kwargs=filter_kwargs
    )
    assert torch.equal(sampled, greedy)


def test_sampling_with_the_cache_matches_recomputation_for_the_same_noise():
    wrapper = decoder_model()
    torch.manual_seed(5)
    cached = wrapper.generate(prompt(), 6, temperature=0.8, filter_logits_fn="top_p")
    torch.manual_seed(5)
    uncached = wrapper.generate(
        prompt(), 6, temperature=0.8, filter_logits_fn="top_p", cache_kv=False
    )
    assert torch.equal(cached, uncached)


def test_bad_generation_arguments_are_refused():
    wrapper = decoder_model()
    with pytest.raises(ValueError, match="unknown filter_logits_fn 'top_z'"):
        wrapper.generate(prompt(), 2, filter_logits_fn="top_z")
    with pytest.raises(ValueError, match="temperature. must be a real number >= 0, got -1"):
        wrapper.generate(prompt(), 2, temperature=-1)
    with pytest.raises(ValueError, match="cache_kind"):
        wrapper.generate(prompt(), 2, cache_kind="paged")


# --- beam search ----------------------------------------------------------------------------


def sequence_log_prob(net, tokens, generated, eos_token=None):
    """Sum of log-probabilities of ``generated`` after ``tokens`` (up to and including eos)."""
    full = torch.cat((tokens, generated), dim=1)
    with torch.no_grad():
        log_probs = net.eval()(full[:, :-1]).log_softmax(-1)[:, tokens.shape[1] - 1 :]
    picked = log_probs.gather(-1, generated[..., None])[..., 0]
    if eos_token is not None:
        is_eos = generated == eos_token
        picked = picked.masked_fill((is_eos.cumsum(-1) - is_eos.long()) > 0, 0.0)
    return picked.sum(-1)


def test_beam_search_with_one_beam_is_greedy():
    wrapper = decoder_model()
    greedy = wrapper.generate(prompt(), 7, temperature=0.0)
    assert torch.equal(wrapper.beam_search(prompt(), 7, beams=1), greedy)


@pytest.mark.parametrize("cache_kv", [True, False])
def test_beam_scores_are_the_log_probabilities_of_the_beams(cache_kv):
    wrapper = decoder_model()
    beams, scores = wrapper.beam_search(
        prompt(2), 5, beams=4, return_beams_and_scores=True, cache_kv=cache_kv
    )
    assert beams.shape == (2, 4, 5) and scores.shape == (2, 4)
    assert (scores[:, :-1] >= scores[:, 1:]).all()  # best first
    for k in range(4):
        expected = sequence_log_prob(wrapper.net, prompt(2), beams[:, k])
        torch.testing.assert_close(scores[:, k], expected.float(), rtol=1e-5, atol=1e-5)
    greedy = wrapper.generate(prompt(2), 5, temperature=0.0)
    assert (scores[:, 0] >= sequence_log_prob(wrapper.net, prompt(2), greedy).float() - 1e-5).all()


def test_beam_search_cached_equals_recomputed():
    wrapper = decoder_model()
    cached = wrapper.beam_search(prompt(), 6, beams=3, return_beams_and_scores=True)
    uncached = wrapper.beam_search(
        prompt(), 6, beams=3, return_beams_and_scores=True, cache_kv=False
    )
    assert torch.equal(cached[0], uncached[0])
    torch.testing.assert_close(cached[1], uncached[1])


def test_finished_beams_are_padded_and_keep_their_score():
    wrapper = decoder_model()
    free = wrapper.beam_search(prompt(1), 6, beams=3)
    eos = int(free[0, 1])
    beams, scores = wrapper.beam_search(
        prompt(1), 6, beams=3, eos_token=eos, return_beams_and_scores=True
    )
    for k in range(3):
        row = beams[0, k]
        if (row == eos).any():
            first = (row == eos).nonzero()[0].item()
            assert (row[first + 1 :] == wrapper.pad_value).all()
        expected = sequence_log_prob(wrapper.net, prompt(1), beams[:, k], eos_token=eos)
        torch.testing.assert_close(scores[:, k], expected.float(), rtol=1e-5, atol=1e-5)


def test_beam_search_on_prompts_of_different_lengths():
    wrapper = decoder_model()
    prompts = [prompt(1, n, seed=n)[0] for n in (2, 4)]
    batched = wrapper.beam_search(prompts, 5, beams=3)
    alone = torch.stack([wrapper.beam_search(p, 5, beams=3) for p in prompts])
    assert torch.equal(batched, alone)


# --- beyond max_seq_len ---------------------------------------------------------------------


def test_a_relative_cache_slides_like_a_banded_long_pass():
    """Past max_seq_len the dynamic cache keeps the last max_seq_len - 1 keys: every query sees
    itself and the max_seq_len - 1 positions before it, at every layer (a band)."""
    window = 8
    wrapper = decoder_model(max_seq_len=window, rotary_pos_emb=True, use_abs_pos_emb=False)
    start = prompt(2, 4)

    def band(n):
        query, key = torch.arange(n)[:, None], torch.arange(n)[None, :]
        return (key <= query) & (key > query - window)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sliding is silent: no fallback
        cached = wrapper.generate(start, 12, temperature=0.0)
    assert torch.equal(cached, greedy_by_long_pass(wrapper.net, start, 12, band))


@pytest.mark.parametrize("cache_kind", ["dynamic", "static"])
def test_absolute_positions_recompute_the_window_past_max_seq_len(cache_kind):
    wrapper = decoder_model(max_seq_len=8)
    with pytest.warns(UserWarning, match="cannot slide"):
        cached = wrapper.generate(prompt(2, 4), 10, temperature=0.0, cache_kind=cache_kind)
    assert torch.equal(cached, wrapper.generate(prompt(2, 4), 10, temperature=0.0, cache_kv=False))


def test_a_prompt_longer_than_the_window_is_cut():
    wrapper = decoder_model(max_seq_len=8)
    long_prompt = prompt(2, 12)
    out = wrapper.generate(long_prompt, 1, temperature=0.0)
    assert torch.equal(out, wrapper.generate(long_prompt[:, -8:], 1, temperature=0.0))


# --- encoder-decoder and continuous ---------------------------------------------------------


def test_xtransformer_generate_encodes_once_and_uses_the_cache():
    torch.manual_seed(0)
    model = XTransformer(
        dim=32,
        enc_num_tokens=VOCAB,
        enc_depth=1,
        enc_heads=2,
        enc_max_seq_len=12,
        dec_num_tokens=VOCAB,
        dec_depth=2,
        dec_heads=2,
        dec_max_seq_len=12,
    ).double()
    calls = []
    model.encoder.register_forward_hook(lambda *args: calls.append(1))
    src = prompt(2, 7)
    src_mask = torch.ones_like(src, dtype=torch.bool)
    src_mask[1, -2:] = False
    start = torch.zeros(2, 1, dtype=torch.long)
    cached = model.generate(src, start, 6, mask=src_mask, temperature=0.0)
    assert len(calls) == 1
    uncached = model.generate(src, start, 6, mask=src_mask, temperature=0.0, cache_kv=False)
    assert torch.equal(cached, uncached)


def continuous_model(**wrapper_kwargs):
    torch.manual_seed(0)
    net = ContinuousTransformerWrapper(
        dim_in=6,
        dim_out=6,
        max_seq_len=16,
        attn_layers=Decoder(dim=16, depth=2, heads=2, attn_dim_head=8),
        **wrapper_kwargs,
    )
    return ContinuousAutoregressiveWrapper(net.double())


@pytest.mark.parametrize("wrapper_kwargs", [{}, {"num_memory_tokens": 2}])
def test_continuous_generation_with_the_cache_equals_recomputation(wrapper_kwargs):
    wrapper = continuous_model(**wrapper_kwargs)
    start = torch.randn(2, 3, 6, dtype=torch.float64)
    cached = wrapper.generate(start, 5)
    uncached = wrapper.generate(start, 5, cache_kv=False)
    static = wrapper.generate(start, 5, cache_kind="static")
    assert cached.shape == (2, 5, 6)
    torch.testing.assert_close(cached, uncached, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(static, uncached, rtol=1e-10, atol=1e-10)


def test_continuous_generation_from_an_unbatched_start():
    wrapper = continuous_model()
    start = torch.randn(6, dtype=torch.float64)
    out = wrapper.generate(start, 4)
    assert out.shape == (4, 6)
    torch.testing.assert_close(out, wrapper.generate(start[None, None], 4)[0])
    with pytest.raises(ValueError, match=r"\(b, n, 6\)"):
        wrapper.generate(torch.randn(2, 3, 5, dtype=torch.float64), 4)
