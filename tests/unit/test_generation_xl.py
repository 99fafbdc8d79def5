"""``XLAutoregressiveWrapper``: training segment by segment and generating across segments equal
the corresponding long pass when the memories hold everything before the segment."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from x_transformers import Decoder, TransformerWrapper, XLAutoregressiveWrapper

VOCAB, SEGMENT = 19, 4


def xl_net(max_mem_len=64, **layer_kwargs):
    torch.manual_seed(0)
    return TransformerWrapper(
        num_tokens=VOCAB,
        max_seq_len=SEGMENT,
        max_mem_len=max_mem_len,
        use_abs_pos_emb=False,
        attn_layers=Decoder(dim=16, depth=2, heads=2, attn_dim_head=8, **layer_kwargs),
    ).double()


def tokens(batch=2, n=13, seed=1):
    return torch.randint(0, VOCAB, (batch, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("layer_kwargs", [{"rotary_pos_emb": True}, {"gate_residual": True}])
def test_segment_by_segment_loss_equals_the_long_pass(layer_kwargs):
    net = xl_net(**layer_kwargs).eval()
    wrapper = XLAutoregressiveWrapper(net)
    x = tokens()
    loss = wrapper(x)
    logits = net(x[:, :-1])  # relative positions only: the long pass has no length limit
    expected = F.cross_entropy(logits.transpose(1, 2), x[:, 1:])
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)


def test_training_gives_gradients_and_returns_memories():
    wrapper = XLAutoregressiveWrapper(xl_net(max_mem_len=6))
    loss, mems = wrapper(tokens(), return_mems=True)
    loss.backward()
    assert all(p.grad is not None for p in wrapper.parameters())
    assert [m.shape[1] for m in mems] == [6, 6]


def test_ignored_targets_do_not_count():
    wrapper = XLAutoregressiveWrapper(xl_net(), ignore_index=0).eval()
    x = tokens()
    x[:, 5:9] = 0
    logits = wrapper.net(x[:, :-1])
    expected = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], ignore_index=0)
    torch.testing.assert_close(wrapper(x), expected, rtol=1e-10, atol=1e-10)


def test_generation_across_segments_equals_greedy_on_the_long_pass():
    net = xl_net(alibi_pos_bias=True).eval()
    wrapper = XLAutoregressiveWrapper(net)
    prompt = tokens(n=6)
    generated = wrapper.generate(prompt, 9, temperature=0.0)
    out = prompt
    with torch.no_grad():
        for _ in range(9):
            out = torch.cat((out, net(out)[:, -1].argmax(-1, keepdim=True)), dim=1)
    assert torch.equal(generated, out[:, 6:])


def test_generation_stops_at_eos_per_row():
    wrapper = XLAutoregressiveWrapper(xl_net(), pad_value=0)
    free = wrapper.generate(tokens(n=3), 7, temperature=0.0)
    eos = int(free[0, 1])
    stopped = wrapper.generate(tokens(n=3), 7, temperature=0.0, eos_token=eos)
    assert stopped.shape == free.shape
    first = (free[0] == eos).nonzero()[0].item()
    assert (stopped[0, first + 1 :] == 0).all()


def test_the_wrapper_needs_memories():
    net = TransformerWrapper(
        num_tokens=VOCAB, max_seq_len=SEGMENT, attn_layers=Decoder(dim=16, depth=1)
    )
    with pytest.raises(ValueError, match="max_mem_len >= 1"):
        XLAutoregressiveWrapper(net)
