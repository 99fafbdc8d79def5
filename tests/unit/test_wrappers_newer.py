"""Issue 15, the wrappers: public building blocks, the Transformer-XL module path, MaskGIT's
non-autoregressive wrapper (2202.04200)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import x_transformers
from x_transformers import (
    Decoder,
    Encoder,
    NonAutoregressiveWrapper,
    TransformerWrapper,
    XLAutoregressiveWrapper,
)


def tokens(vocab, shape, seed=1):
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------- building blocks


@pytest.mark.parametrize("name", ["Attention", "Attend", "AttentionLayers", "FeedForward"])
def test_building_blocks_import_from_both_paths(name):
    import x_transformers.x_transformers as old_path

    assert getattr(x_transformers, name) is getattr(old_path, name)
    assert name in x_transformers.__all__


def test_building_blocks_run_on_their_own():
    from x_transformers import Attend, Attention, AttentionLayers, FeedForward

    torch.manual_seed(0)
    x = torch.randn(2, 5, 32)
    out, intermediates = Attention(dim=32, heads=4, causal=True)(x)
    assert out.shape == x.shape and intermediates is not None
    assert FeedForward(32)(x).shape == x.shape
    assert FeedForward(32, mult=2, glu=True)(x).shape == x.shape
    with pytest.raises(TypeError, match="options"):
        FeedForward(32, options=x_transformers.options.FeedForwardOptions(), mult=2)
    q = k = v = torch.randn(2, 4, 5, 8)
    attended, _ = Attend(causal=True)(q, k, v)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(attended, expected)
    assert AttentionLayers(dim=32, depth=1, heads=4)(x).shape == x.shape


# ----------------------------------------------------------------- Transformer-XL


def test_xl_wrapper_module_path():
    from x_transformers.xl_autoregressive_wrapper import XLAutoregressiveWrapper as old_path

    assert old_path is XLAutoregressiveWrapper


def test_xl_loss_is_the_token_weighted_mean_of_the_segment_losses():
    """Segments of max_seq_len with the memories of the segments before them; the wrapper's
    loss is the sum of the segment losses over the number of targets."""
    torch.manual_seed(0)
    segment, vocab = 4, 17
    net = TransformerWrapper(
        num_tokens=vocab,
        max_seq_len=segment,
        max_mem_len=3,  # shorter than the past: the long pass would differ, the segments not
        attn_layers=Decoder(dim=16, depth=2, heads=2, rotary_pos_emb=True),
    ).double()
    net.eval()
    x = tokens(vocab, (2, 11))  # 10 targets: segments of 4, 4, 2
    loss = XLAutoregressiveWrapper(net)(x)
    inp, target = x[:, :-1], x[:, 1:]
    mems, total = None, 0.0
    for start in (0, 4, 8):
        logits, mems = net(inp[:, start : start + segment], mems=mems, return_mems=True)
        seg_target = target[:, start : start + segment]
        total = total + F.cross_entropy(logits.transpose(1, 2), seg_target, reduction="sum")
    torch.testing.assert_close(loss, total / target.numel(), rtol=1e-12, atol=1e-12)
    # without the memories the segments give another loss: they are used
    alone = sum(
        F.cross_entropy(
            net(inp[:, s : s + segment]).transpose(1, 2),
            target[:, s : s + segment],
            reduction="sum",
        )
        for s in (0, 4, 8)
    )
    assert not torch.allclose(loss, alone / target.numel())


# ----------------------------------------------------------------- MaskGIT

VOCAB, HALF = 8, 4  # content tokens 0..7; the mask id is 8


def copy_batch(batch, seed=None):
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    first = torch.randint(0, VOCAB, (batch, HALF), generator=generator)
    return torch.cat((first, first), dim=1)  # (b, 2 * HALF): the second half copies the first


def nar_model(steps=4):
    torch.manual_seed(0)
    net = TransformerWrapper(
        num_tokens=VOCAB + 1,
        max_seq_len=2 * HALF,
        attn_layers=Encoder(dim=32, depth=2, heads=4),
    )
    return NonAutoregressiveWrapper(net, mask_id=VOCAB, steps=steps)


def test_training_masks_follow_the_schedule():
    model = nar_model()
    real = torch.ones(4096, 10, dtype=torch.bool)
    real[:, 8:] = False
    torch.manual_seed(0)
    counts = model.draw_masked(real)
    assert not counts[:, 8:].any(), "padding is never masked"
    per_row = counts.sum(dim=1).float()
    assert per_row.min() >= 1 and per_row.max() <= 8
    # E[ceil(cos(pi r / 2) * 8)] = 8 * 2 / pi + about one half
    assert abs(per_row.mean().item() - (8 * 2 / math.pi + 0.5)) < 0.15
    linear = NonAutoregressiveWrapper(model.net, mask_id=VOCAB, schedule="linear")
    assert linear.draw_masked(real).sum(dim=1).float().mean() < per_row.mean() - 0.5


def test_loss_counts_only_the_masked_positions():
    model = nar_model().eval()
    x = copy_batch(3, seed=0)
    masked = torch.zeros_like(x, dtype=torch.bool)
    masked[:, HALF:] = True
    inputs = x.masked_fill(masked, VOCAB)
    logits = model.net(inputs)
    expected = F.cross_entropy(logits[:, HALF:].transpose(1, 2), x[:, HALF:])
    torch.testing.assert_close(model(x, masked=masked), expected)


def test_maskgit_learns_a_copy_task_and_fills_every_masked_position():
    """200 steps of masked-token training; then, with the second half masked, the loss is
    below 0.15 nats (log 9 = 2.2 untrained) and greedy decoding copies the first half."""
    model = nar_model(steps=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = copy_batch(256, seed=0)
    second = torch.zeros_like(x, dtype=torch.bool)
    second[:, HALF:] = True
    with torch.no_grad():
        assert model(x, masked=second) > 1.5
    torch.manual_seed(1)
    for _ in range(200):
        loss = model(copy_batch(64))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        assert model(x, masked=second) < 0.15
    filled = model.generate(x.masked_fill(second, VOCAB), temperature=0.0)
    assert not (filled == VOCAB).any(), "a masked position was left"
    assert torch.equal(filled[:, :HALF], x[:, :HALF]), "given tokens are kept"
    assert (filled[:, HALF:] == x[:, HALF:]).float().mean() > 0.95
    sampled = model.generate(batch_size=5, generator=torch.Generator().manual_seed(0))
    assert sampled.shape == (5, 2 * HALF) and not (sampled == VOCAB).any()


def test_each_step_unmasks_following_the_schedule():
    model = nar_model(steps=4).eval()
    seq = torch.full((2, 2 * HALF), VOCAB)
    to_fill = torch.full((2,), 2 * HALF)
    remaining = []
    for step in range(1, 5):
        seq = model._step(seq, to_fill, step / 4, 1.0, None, {})
        remaining.append((seq == VOCAB).sum(dim=1).tolist())
    # floor(cos(pi t / 8) * 8) for t = 1..4
    assert remaining == [[7, 7], [5, 5], [3, 3], [0, 0]]


def test_refusals_name_the_keyword():
    net = TransformerWrapper(
        num_tokens=5, max_seq_len=8, attn_layers=Decoder(dim=16, depth=1, heads=2)
    )
    with pytest.raises(ValueError, match="Encoder"):
        NonAutoregressiveWrapper(net, mask_id=4)
    encoder_net = nar_model().net
    with pytest.raises(ValueError, match="mask_id"):
        NonAutoregressiveWrapper(encoder_net, mask_id=VOCAB + 1)
    with pytest.raises(ValueError, match="schedule"):
        NonAutoregressiveWrapper(encoder_net, mask_id=VOCAB, schedule="square")
    with pytest.raises(ValueError, match="steps"):
        NonAutoregressiveWrapper(encoder_net, mask_id=VOCAB, steps=0)


def test_nar_wrapper_saves_and_loads(tmp_path):
    model = nar_model().eval()
    model.save_pretrained(tmp_path)
    loaded = NonAutoregressiveWrapper.from_pretrained(tmp_path)
    x = copy_batch(2, seed=3)
    assert loaded.mask_id == VOCAB and loaded.steps == 4
    torch.testing.assert_close(loaded.net(x), model.net(x), rtol=0, atol=0)
