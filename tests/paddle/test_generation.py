"""Generation under Paddle equals torch's (issue 16): greedy tokens with the dynamic cache, the
static cache and no cache over every decoder row of the feature matrix that generates tokens;
beam search; the sampling filters on the same logits."""

from __future__ import annotations

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import torch  # noqa: E402

import pd_x_transformers as pdx  # noqa: E402
import x_transformers as xt  # noqa: E402
from tests.feature_matrix import NUM_TOKENS, cases_for, fixed_condition  # noqa: E402
from tests.paddle.helpers import build_pair, copy_weights, to_numpy, to_paddle  # noqa: E402
from tests.paddle.test_parity import UNSUPPORTED  # noqa: E402

pytestmark = pytest.mark.paddle

NEW_TOKENS = 6
CACHES = {
    "dynamic": {"cache_kv": True, "cache_kind": "dynamic"},
    "static": {"cache_kv": True, "cache_kind": "static"},
    "none": {"cache_kv": False},
}


def sharpen(torch_model: torch.nn.Module, factor: float = 4.0) -> None:
    """Scale every weight so that the tiny random model's logits are spread out: greedy tokens
    then vary from step to step instead of repeating one token."""
    with torch.no_grad():
        for param in torch_model.parameters():
            param.mul_(factor)


def prompts(batch=2, length=5, seed=3):
    return torch.randint(
        0, NUM_TOKENS, (batch, length), generator=torch.Generator().manual_seed(seed)
    )


GENERATING_ROWS = [p for p in cases_for("decoder") if "not_token_logits" not in p.values[0].tags]


@pytest.mark.parametrize("case", GENERATING_ROWS)
def test_greedy_tokens_equal(case):
    if case.id in UNSUPPORTED:
        pytest.skip(f"torch-only: {UNSUPPORTED[case.id]}")
    torch_net, paddle_net = build_pair(case, "decoder")
    sharpen(torch_net)
    copy_weights(torch_net, paddle_net)
    torch_model, paddle_model = (
        xt.AutoregressiveWrapper(torch_net),
        pdx.AutoregressiveWrapper(paddle_net),
    )
    condition = fixed_condition(torch_net, 2)
    condition_p = {key: to_paddle(value) for key, value in condition.items()}
    prompt = prompts()
    expected = None
    for name, cache in CACHES.items():
        reference = torch_model.generate(prompt, NEW_TOKENS, temperature=0.0, **cache, **condition)
        tokens = paddle_model.generate(
            to_paddle(prompt), NEW_TOKENS, temperature=0.0, **cache, **condition_p
        )
        assert isinstance(tokens, paddle.Tensor)
        np.testing.assert_array_equal(to_numpy(tokens), to_numpy(reference), err_msg=name)
        expected = to_numpy(reference) if expected is None else expected


def _pair(**layer_kwargs):
    torch.manual_seed(0)
    torch_net = xt.TransformerWrapper(
        num_tokens=NUM_TOKENS,
        max_seq_len=32,
        attn_layers=xt.Decoder(dim=32, depth=2, heads=4, **layer_kwargs),
    ).double()
    sharpen(torch_net)
    paddle_net = pdx.TransformerWrapper(
        num_tokens=NUM_TOKENS,
        max_seq_len=32,
        attn_layers=pdx.Decoder(dim=32, depth=2, heads=4, **layer_kwargs),
    )
    paddle_net.to(dtype="float64")
    copy_weights(torch_net, paddle_net)
    return xt.AutoregressiveWrapper(torch_net), pdx.AutoregressiveWrapper(paddle_net)


def test_greedy_tokens_vary():
    """The sharpened model really generates different tokens (the equality above means
    something)."""
    torch_model, paddle_model = _pair(rotary_pos_emb=True)
    tokens = to_numpy(paddle_model.generate(to_paddle(prompts()), NEW_TOKENS, temperature=0.0))
    assert len(np.unique(tokens)) > 3, tokens


@pytest.mark.parametrize("layer_kwargs", [{}, {"rotary_pos_emb": True}, {"alibi_pos_bias": True}])
def test_beam_search_equal(layer_kwargs):
    torch_model, paddle_model = _pair(**layer_kwargs)
    prompt = prompts()
    ref_tokens, ref_scores = torch_model.beam_search(
        prompt, 5, beams=3, return_beams_and_scores=True
    )
    tokens, scores = paddle_model.beam_search(
        to_paddle(prompt), 5, beams=3, return_beams_and_scores=True
    )
    np.testing.assert_array_equal(to_numpy(tokens), to_numpy(ref_tokens))
    np.testing.assert_allclose(to_numpy(scores), to_numpy(ref_scores), rtol=0, atol=1e-6)


def test_padded_prompts_equal():
    """Prompts of different lengths (left-padded inside generate), with each cache."""
    torch_model, paddle_model = _pair(rotary_pos_emb=True)
    rows = [prompts(1, 3, seed=5)[0], prompts(1, 6, seed=6)[0]]
    for cache in CACHES.values():
        reference = torch_model.generate(rows, NEW_TOKENS, temperature=0.0, **cache)
        tokens = paddle_model.generate(
            [to_paddle(r) for r in rows], NEW_TOKENS, temperature=0.0, **cache
        )
        np.testing.assert_array_equal(to_numpy(tokens), to_numpy(reference))


@pytest.mark.parametrize(
    "name, kwargs", [("top_k", {"k": 5}), ("top_p", {"thres": 0.8}), ("min_p", {"min_p": 0.2})]
)
def test_sampling_filters(name, kwargs):
    from pd_x_transformers._src.generation import sampling as paddle_sampling

    from x_transformers.generation import sampling as torch_sampling

    logits = torch.randn(
        3, NUM_TOKENS, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    expected = torch_sampling.FILTERS[name](logits, **kwargs)
    filtered = paddle_sampling.FILTERS[name](to_paddle(logits), **kwargs)
    np.testing.assert_array_equal(to_numpy(filtered), to_numpy(expected))
    assert np.isinf(to_numpy(filtered)).any()  # the filter dropped something

    _, paddle_model = _pair()
    paddle.seed(0)
    tokens = paddle_model.generate(
        to_paddle(prompts()),
        NEW_TOKENS,
        temperature=1.0,
        filter_logits_fn=name,
        filter_kwargs=kwargs,
    )
    assert tuple(tokens.shape) == (2, NEW_TOKENS)
    assert ((to_numpy(tokens) >= 0) & (to_numpy(tokens) < NUM_TOKENS)).all()
