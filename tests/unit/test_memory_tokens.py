"""Memory tokens (2006.11527): stripped from the outputs, reaching every position, causal in a
decoder, visible under any padding mask, and cached once."""

from __future__ import annotations

import pytest
import torch

from x_transformers import ContinuousTransformerWrapper, Decoder, Encoder, TransformerWrapper
from x_transformers.generation.kv_cache import DynamicKVCache
from x_transformers.wrappers.memory_tokens import MemoryTokens

VOCAB, MEMORY = 17, 3


def model(stack=Decoder, num_memory_tokens=MEMORY, **wrapper_kwargs):
    torch.manual_seed(0)
    return TransformerWrapper(
        num_tokens=VOCAB,
        max_seq_len=12,
        num_memory_tokens=num_memory_tokens,
        attn_layers=stack(dim=16, depth=2, heads=2, attn_dim_head=8),
        **wrapper_kwargs,
    ).double()


def tokens(batch=2, n=7):
    return torch.randint(0, VOCAB, (batch, n), generator=torch.Generator().manual_seed(1))


def test_prepend_and_strip_are_inverse_and_keep_the_memory_visible():
    memory = MemoryTokens(2, 4)
    x = torch.randn(3, 5, 4)
    mask = torch.zeros(3, 5, dtype=torch.bool)
    with_memory, mask = memory.prepend(x, mask)
    assert with_memory.shape == (3, 7, 4)
    assert torch.equal(with_memory[0, :2], memory.tokens.detach())
    assert mask[:, :2].all() and not mask[:, 2:].any()
    assert torch.equal(memory.strip(with_memory), x)


@pytest.mark.parametrize("stack", [Encoder, Decoder])
def test_memory_tokens_are_stripped_and_reach_every_position(stack):
    net = model(stack)
    out = net(tokens())
    assert out.shape == (2, 7, VOCAB)
    for position in range(7):
        (gradient,) = torch.autograd.grad(
            out[:, position].sum(), net.memory_tokens.tokens, retain_graph=True
        )
        assert gradient.abs().sum() > 0, f"position {position} does not see the memory"


def test_the_memory_of_a_decoder_never_sees_the_sequence():
    net = model(Decoder).eval()
    x = tokens()
    changed = (x + 1) % VOCAB
    with torch.no_grad():
        _, first = net(x, return_intermediates=True)
        _, second = net(changed, return_intermediates=True)
    for before, after in zip(first.hiddens, second.hiddens):
        torch.testing.assert_close(before[:, :MEMORY], after[:, :MEMORY])  # memory positions
        assert not torch.allclose(before[:, MEMORY:], after[:, MEMORY:])


def test_memory_tokens_change_the_output():
    plain, with_memory = model(num_memory_tokens=0), model()
    with_memory.load_state_dict(plain.state_dict(), strict=False)
    assert not torch.allclose(plain(tokens()), with_memory(tokens()))


def test_a_fully_padded_row_still_reads_the_memory():
    net = model(Encoder).eval()
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[0] = False
    with torch.no_grad():
        out = net(tokens(), mask=mask)
    assert torch.isfinite(out).all()


def test_memory_tokens_are_cached_on_the_first_forward_only():
    net = model(Decoder).eval()
    x = tokens()
    cache = DynamicKVCache()
    with torch.no_grad():
        full = net(x)
        first = net(x[:, :4], cache=cache)
        assert cache.prefix_length == MEMORY and cache.offset == MEMORY + 4
        rest = net(x[:, 4:], cache=cache)
    torch.testing.assert_close(torch.cat((first, rest), dim=1), full, rtol=1e-10, atol=1e-10)


def test_the_continuous_wrapper_has_memory_tokens_too():
    torch.manual_seed(0)
    net = ContinuousTransformerWrapper(
        dim_in=5,
        dim_out=4,
        max_seq_len=12,
        num_memory_tokens=2,
        attn_layers=Encoder(dim=16, depth=1, heads=2),
    )
    out = net(torch.randn(2, 6, 5))
    assert out.shape == (2, 6, 4)
    assert sum(p.numel() for p in net.memory_tokens.parameters()) == 2 * 16


def test_a_negative_count_is_refused():
    with pytest.raises(ValueError, match="got -1"):
        MemoryTokens(-1, 8)
