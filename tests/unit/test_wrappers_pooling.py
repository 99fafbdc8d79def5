"""Issue 15, the wrapper keywords: the class token and mean pooling, custom embedding and logits
modules, logits with embeddings, and the probabilistic continuous wrapper (Gaussian NLL)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from x_transformers import (
    ContinuousAutoregressiveWrapper,
    ContinuousTransformerWrapper,
    Decoder,
    Encoder,
    TransformerWrapper,
)
from x_transformers.hub.config import ConfigError

VOCAB, DIM = 20, 16


def token_model(stack=Encoder, **kwargs):
    torch.manual_seed(0)
    attn_layers = stack(dim=DIM, depth=2, heads=2)
    return TransformerWrapper(num_tokens=VOCAB, max_seq_len=16, attn_layers=attn_layers, **kwargs)


def tokens(shape=(2, 7), seed=1):
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------- pooling


def test_class_token_output_is_the_first_position_of_the_stack():
    model = token_model(use_cls_token=True).eval()
    x = tokens()
    embeddings = model(x, return_embeddings=True)
    assert embeddings.shape == (2, DIM)
    # by hand: the class token in front of the embedded tokens, through the stack, position 0
    h, _ = model.stem(model.embed(x))
    h = torch.cat((model.pooling.cls_token.expand(2, 1, DIM), h), dim=1)
    torch.testing.assert_close(embeddings, model.attn_layers(h)[:, 0])
    logits = model(x)
    assert logits.shape == (2, VOCAB)
    torch.testing.assert_close(logits, model.to_logits(embeddings))


def test_class_token_ignores_padding_and_needs_an_encoder():
    model = token_model(use_cls_token=True).eval()
    x = tokens()
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[0, 4:] = False
    torch.testing.assert_close(
        model(x, mask=mask, return_embeddings=True)[0],
        model(x[:1, :4], return_embeddings=True)[0],
    )
    with pytest.raises(ValueError, match="use_cls_token"):
        token_model(Decoder, use_cls_token=True)


def test_average_pool_is_the_masked_mean_of_the_final_embeddings():
    plain, pooled = token_model().eval(), token_model(average_pool_embed=True).eval()
    x = tokens()
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[1, 3:] = False
    hidden = plain(x, mask=mask, return_embeddings=True)  # same weights: seed 0
    expected = torch.stack((hidden[0].mean(dim=0), hidden[1, :3].mean(dim=0)))
    out = pooled(x, mask=mask, return_embeddings=True)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(pooled(x, mask=mask), pooled.to_logits(expected))
    mask[0] = False  # a fully padded row pools to zeros, not NaN
    assert torch.isfinite(pooled(x, mask=mask)).all()


def test_pooling_refusals():
    with pytest.raises(ValueError, match="use_cls_token' and 'average_pool_embed"):
        token_model(use_cls_token=True, average_pool_embed=True)
    model = token_model(Decoder, average_pool_embed=True).eval()
    _, cache = model(tokens(), return_intermediates=True)
    with pytest.raises(ValueError, match="average_pool_embed"):
        model(tokens((2, 1)), cache=cache)


def test_logits_and_embeddings_together():
    model = token_model(Decoder).eval()
    x = tokens()
    logits, embeddings = model(x, return_logits_and_embeddings=True)
    torch.testing.assert_close(logits, model(x))
    torch.testing.assert_close(embeddings, model(x, return_embeddings=True))
    (logits, embeddings), intermediates = model(
        x, return_logits_and_embeddings=True, return_intermediates=True
    )
    assert logits.shape == (2, 7, VOCAB) and intermediates is not None


# ----------------------------------------------------------------- custom modules


class ScaledEmbedding(nn.Module):
    def __init__(self, num_tokens, dim):
        super().__init__()
        self.embedding = nn.Embedding(num_tokens, dim)

    def forward(self, x):
        return self.embedding(x) * 2.0


def test_custom_token_embedding_and_logits_head():
    torch.manual_seed(0)
    emb, head = ScaledEmbedding(VOCAB, DIM), nn.Linear(DIM, 5)
    model = token_model(Decoder, token_emb=emb, to_logits=head).eval()
    assert model.token_emb is emb and model.to_logits is head
    x = tokens()
    out = model(x)
    assert out.shape == (2, 7, 5)
    torch.testing.assert_close(out, head(model(x, return_embeddings=True)))
    # the module is what embeds: its output enters the stem
    h, _ = model.stem(emb(x))
    torch.testing.assert_close(model(x, return_embeddings=True), model.attn_layers(h))
    out.sum().backward()
    assert emb.embedding.weight.grad is not None and head.weight.grad is not None


def test_custom_module_refusals_and_saving(tmp_path):
    with pytest.raises(ValueError, match="'token_emb' and 'tie_embedding'"):
        token_model(token_emb=nn.Embedding(VOCAB, DIM), tie_embedding=True)
    for name in ("tie_embedding", "logits_bias"):
        with pytest.raises(ValueError, match=f"'to_logits' and '{name}'"):
            token_model(to_logits=nn.Linear(DIM, VOCAB), **{name: True})
    with pytest.raises(TypeError, match="token_emb"):
        token_model(token_emb=lambda x: x)
    wrong_width = token_model(token_emb=nn.Embedding(VOCAB, DIM + 1))
    with pytest.raises(ValueError, match="token_emb"):
        wrong_width(tokens())
    for name, module in (("token_emb", nn.Embedding(VOCAB, DIM)), ("to_logits", nn.Linear(16, 3))):
        with pytest.raises(ConfigError, match=f"TransformerWrapper.{name}"):
            token_model(**{name: module}).save_pretrained(tmp_path / name)


# ----------------------------------------------------------------- probabilistic


def continuous(**kwargs):
    torch.manual_seed(0)
    return ContinuousTransformerWrapper(
        dim_in=3,
        dim_out=3,
        max_seq_len=16,
        attn_layers=Decoder(dim=DIM, depth=1, heads=2),
        probabilistic=True,
        **kwargs,
    ).eval()


def test_probabilistic_head_gives_mean_and_log_variance():
    net = continuous()
    x = torch.randn(2, 5, 3)
    out = net(x)
    assert out.shape == (2, 5, 3, 2)
    projected = net.project_out(net(x, return_embeddings=True))  # (b, n, 6)
    torch.testing.assert_close(out[..., 0], projected[..., :3])
    torch.testing.assert_close(out[..., 1], projected[..., 3:])
    with pytest.raises(TypeError, match="probabilistic"):
        token_model(probabilistic=True)


def test_probabilistic_loss_is_the_gaussian_nll_on_a_hand_example():
    wrapper = ContinuousAutoregressiveWrapper(continuous())
    # a fixed prediction: mean 1, log-variance log 4 for every feature
    fixed = torch.tensor([1.0, math.log(4.0)]).expand(1, 2, 3, 2)
    wrapper.net.forward = lambda inp, **kwargs: fixed.expand(inp.shape[0], -1, -1, -1)
    x = torch.tensor([[[0.0, 0.0, 0.0], [3.0, 1.0, 0.0], [1.0, -1.0, 2.0]]])
    # per element 0.5 * (log 4 + (target - 1)^2 / 4); targets are x[:, 1:]
    squared = torch.tensor([4.0, 0.0, 1.0, 0.0, 4.0, 1.0])
    expected = (0.5 * (math.log(4.0) + squared / 4.0)).mean()
    torch.testing.assert_close(wrapper(x), expected)
    mask = torch.tensor([[True, True, False]])  # the last target does not count
    expected_masked = (0.5 * (math.log(4.0) + squared[:3] / 4.0)).mean()
    torch.testing.assert_close(wrapper(x, mask=mask), expected_masked)
    # and the formula is torch's Gaussian NLL
    reference = nn.functional.gaussian_nll_loss(
        torch.ones(6), torch.tensor([3.0, 1.0, 0.0, 1.0, -1.0, 2.0]), torch.full((6,), 4.0)
    )
    torch.testing.assert_close(wrapper(x), reference)


def test_probabilistic_generation_samples_around_the_mean():
    wrapper = ContinuousAutoregressiveWrapper(continuous())
    start = torch.randn(2, 3, 3)
    greedy = wrapper.generate(start, 4, temperature=0.0)
    # temperature 0 feeds back the means: the first one is the net's mean at the prompt's end
    torch.testing.assert_close(greedy[:, 0], wrapper.net(start)[:, -1, :, 0])
    seeded = [
        wrapper.generate(start, 4, generator=torch.Generator().manual_seed(3)) for _ in range(2)
    ]
    torch.testing.assert_close(seeded[0], seeded[1])
    assert not torch.allclose(seeded[0], greedy)
    # the first sample is mean + exp(0.5 logvar) * noise with the generator's first noise
    out = wrapper.net(start)[:, -1]
    noise = torch.randn(2, 3, generator=torch.Generator().manual_seed(3))
    expected = out[..., 0] + torch.exp(0.5 * out[..., 1]) * noise
    torch.testing.assert_close(seeded[0][:, 0], expected)
    with pytest.raises(ValueError, match="loss_fn"):
        ContinuousAutoregressiveWrapper(continuous(), loss_fn=nn.functional.mse_loss)
    plain = ContinuousTransformerWrapper(
        dim_in=3, dim_out=3, max_seq_len=16, attn_layers=Decoder(dim=DIM, depth=1, heads=2)
    )
    with pytest.raises(ValueError, match="probabilistic"):
        ContinuousAutoregressiveWrapper(plain).generate(start, 2, temperature=0.5)


def test_probabilistic_and_pooled_models_save_and_load(tmp_path):
    wrapper = ContinuousAutoregressiveWrapper(continuous(average_pool_embed=True))
    wrapper.save_pretrained(tmp_path / "continuous")
    loaded = ContinuousAutoregressiveWrapper.from_pretrained(tmp_path / "continuous")
    x = torch.randn(2, 5, 3)
    assert loaded.net.probabilistic and loaded.probabilistic
    torch.testing.assert_close(loaded.net(x), wrapper.net(x), rtol=0, atol=0)
    assert loaded.net(x).shape == (2, 3, 2)  # pooled: (b, dim_out, 2)
