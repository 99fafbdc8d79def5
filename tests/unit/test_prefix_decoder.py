"""``PrefixDecoder``: causal except over a prefix whose positions see each other (prefix LM).

The properties run over every decoder row of the feature matrix (the matrix builds Encoder /
Decoder models, so a stack class cannot be a row there): a prefix token sees later prefix
tokens, no token sees past the prefix beyond itself, and a KV cache prefilled with the prefix
decodes to the full forward's logits.
"""

from __future__ import annotations

import pytest
import torch

from tests.feature_matrix import DEPTH, DIM, DIM_HEAD, HEADS, MAX_SEQ_LEN, NUM_TOKENS, cases_for
from x_transformers import Decoder, PrefixDecoder, TransformerWrapper
from x_transformers.generation.kv_cache import StaticKVCache

SEQ, PREFIX = 10, 4
TIGHT = {"rtol": 1e-9, "atol": 1e-9}


def build(row=None, stack=PrefixDecoder, **extra):
    torch.manual_seed(0)
    layer_kwargs = {"attn_dim_head": DIM_HEAD, **(row.layer_kwargs if row else {}), **extra}
    wrapper_kwargs = row.wrapper_kwargs if row else {}
    layers = stack(dim=DIM, depth=DEPTH, heads=HEADS, **layer_kwargs)
    net = TransformerWrapper(
        num_tokens=NUM_TOKENS, max_seq_len=MAX_SEQ_LEN, attn_layers=layers, **wrapper_kwargs
    )
    if getattr(layers, "dim_condition", None) is not None:  # conditioned rows (DiT)
        give_a_fixed_condition(net, layers.dim_condition)
    open_zero_initialised_gates(net)
    return net.double().eval()


def give_a_fixed_condition(net, dim_condition: int) -> None:
    """Every call of a conditioned model gets one fixed ``condition=`` (b, dim_condition)."""
    vector = torch.randn(dim_condition, generator=torch.Generator().manual_seed(7))

    def add_condition(module, args, kwargs):
        x = args[0] if args else kwargs["x"]
        kwargs["condition"] = vector.to(torch.float64).expand(x.shape[0], -1)
        return args, kwargs

    net.register_forward_pre_hook(add_condition, with_kwargs=True)


def open_zero_initialised_gates(net) -> None:
    """ReZero and zero-initialised layerscale gates make every block the identity at init, where
    no token sees another; small values let the attention pattern show in the outputs."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in net.parameters():
            if not param.any():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)


def tokens(batch=2, seq=SEQ, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, NUM_TOKENS, (batch, seq), generator=generator)


def changed_from(x, start, stop=None):
    changed = x.clone()
    changed[:, start:stop] = (changed[:, start:stop] + 1) % NUM_TOKENS
    return changed


def check_prefix_visibility(net, prefix=PREFIX):
    """Prefix tokens see the last prefix token; nobody sees past the prefix beyond itself."""
    x = tokens()
    with torch.no_grad():
        before = net(x, prefix_attn_len=prefix)
        later_prefix = net(changed_from(x, prefix - 1, prefix), prefix_attn_len=prefix)
        after_prefix = net(changed_from(x, prefix + 1), prefix_attn_len=prefix)
    assert (before[:, 0] - later_prefix[:, 0]).abs().max() > 1e-9, "prefix is not bidirectional"
    torch.testing.assert_close(before[:, : prefix + 1], after_prefix[:, : prefix + 1], **TIGHT)
    assert (before[:, prefix + 1 :] - after_prefix[:, prefix + 1 :]).abs().max() > 1e-9


def check_cache_after_prefix(net, prefix=PREFIX):
    """Prefill the prefix (and one more token) in one forward, then decode one token at a time
    and then two at once: the full forward's logits."""
    x = tokens()
    with torch.no_grad():
        full = net(x, prefix_attn_len=prefix)
        logits, cache = net(x[:, : prefix + 1], prefix_attn_len=prefix, return_intermediates=True)
        pieces = [logits]
        for start, stop in ((prefix + 1, prefix + 2), (prefix + 2, prefix + 4), (prefix + 4, SEQ)):
            logits, cache = net(x[:, start:stop], cache=cache, return_intermediates=True)
            pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, **TIGHT)


DECODER_ROWS = [
    row
    for row in cases_for("decoder")
    # a prefix changes the logits of tokens in it, which these rows' checks need to read
    if "not_token_logits" not in row.values[0].tags
]


@pytest.mark.parametrize("row", DECODER_ROWS)
def test_prefix_is_bidirectional_and_nothing_sees_past_it(row):
    check_prefix_visibility(build(row))


@pytest.mark.parametrize("row", [p for p in DECODER_ROWS if "no_cache" not in p.values[0].tags])
def test_kv_cache_after_the_prefix_equals_the_full_forward(row):
    check_cache_after_prefix(build(row))


def test_per_row_prefix_lengths_equal_each_row_alone():
    net = build(rotary_pos_emb=True)
    x, lengths = tokens(), torch.tensor([2, 7])
    with torch.no_grad():
        together = net(x, prefix_attn_len=lengths)
        for row in range(2):
            alone = net(x[row : row + 1], prefix_attn_len=int(lengths[row]))
            torch.testing.assert_close(together[row : row + 1], alone, **TIGHT)
    assert (together[0] - net(x[:1], prefix_attn_len=7)[0]).abs().max() > 1e-9


@pytest.mark.parametrize("wrapper_kwargs", [{}, {"num_memory_tokens": 2}])
def test_a_left_padded_row_counts_its_prefix_from_its_first_real_token(wrapper_kwargs):
    torch.manual_seed(0)
    layers = PrefixDecoder(dim=DIM, depth=DEPTH, heads=HEADS, rotary_pos_emb=True)
    net = TransformerWrapper(
        num_tokens=NUM_TOKENS,
        max_seq_len=MAX_SEQ_LEN,
        attn_layers=layers,
        use_abs_pos_emb=False,
        **wrapper_kwargs,
    )
    net = net.double().eval()
    long, short = tokens(batch=1, seq=8), tokens(batch=1, seq=5, seed=2)
    x = torch.cat((long, torch.cat((torch.zeros(1, 3, dtype=torch.long), short), dim=1)))
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, :3] = False
    with torch.no_grad():
        out = net(x, mask=mask, seq_start_pos=torch.tensor([0, 3]), prefix_attn_len=3)
        torch.testing.assert_close(out[:1], net(long, prefix_attn_len=3), **TIGHT)
        torch.testing.assert_close(out[1:, 3:], net(short, prefix_attn_len=3), **TIGHT)


def test_without_a_prefix_it_is_a_decoder():
    x = tokens()
    with torch.no_grad():
        decoder = build(stack=Decoder, rotary_pos_emb=True)(x)
        net = build(rotary_pos_emb=True)
        torch.testing.assert_close(net(x), decoder, **TIGHT)
        torch.testing.assert_close(net(x, prefix_attn_len=0), decoder, **TIGHT)
        # a prefix of one token is no prefix either (a token always sees itself)
        torch.testing.assert_close(net(x, prefix_attn_len=1), decoder, **TIGHT)


def test_the_prefix_counts_tokens_after_memory_tokens_and_prepended_embeddings():
    net = build(stack=PrefixDecoder, rotary_pos_emb=True)
    with_memory = TransformerWrapper(
        num_tokens=NUM_TOKENS,
        max_seq_len=MAX_SEQ_LEN,
        attn_layers=net.attn_layers,
        num_memory_tokens=2,
    ).double()
    check_prefix_visibility(with_memory.eval())
    check_cache_after_prefix(with_memory.eval())


def test_static_cache_prefill_then_decode():
    net = build(rotary_pos_emb=True)
    x = tokens()
    cache = StaticKVCache(SEQ)
    with torch.no_grad():
        full = net(x, prefix_attn_len=PREFIX)
        pieces = [net(x[:, :PREFIX], prefix_attn_len=PREFIX, cache=cache)]
        for t in range(PREFIX, SEQ):
            pieces.append(net(x[:, t : t + 1], cache=cache))
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, **TIGHT)


def test_generation_with_a_prefix_eager_and_compiled():
    """``generate`` passes ``prefix_attn_len`` to every step: the prefill takes it, the cached
    steps (eager or compiled on a static cache) find it within the cached positions."""
    from x_transformers import AutoregressiveWrapper

    net = build(rotary_pos_emb=True)
    wrapper, prompts = AutoregressiveWrapper(net), tokens(seq=6)
    expected = prompts
    with torch.no_grad():
        for _ in range(3):
            logits = net(expected, prefix_attn_len=PREFIX)[:, -1]
            expected = torch.cat((expected, logits.argmax(dim=-1, keepdim=True)), dim=1)
        for compile in (False, True):
            out = wrapper.generate(
                prompts, 3, temperature=0.0, prefix_attn_len=PREFIX, compile=compile
            )
            assert torch.equal(out, expected[:, 6:]), f"compile={compile}"


def test_refusals():
    net, x = build(rotary_pos_emb=True), tokens()
    with pytest.raises(TypeError, match="'prefix_attn_len' needs a PrefixDecoder"):
        build(stack=Decoder)(x, prefix_attn_len=2)
    with pytest.raises(TypeError, match="'causal'"):
        PrefixDecoder(dim=DIM, depth=1, causal=True)
    with pytest.raises(ValueError, match=r"\[0, 10\]"):
        net(x, prefix_attn_len=11)
    with pytest.raises(ValueError, match=r"shape \(batch=2,\)"):
        net(x, prefix_attn_len=torch.tensor([1, 2, 3]))
    # the prefix must be prefilled in one forward
    _, cache = net(x[:, :3], prefix_attn_len=3, return_intermediates=True)
    with pytest.raises(ValueError, match=r"prefilled in the first forward: got values in \[5, 5\]"):
        net(x[:, 3:5], cache=cache, prefix_attn_len=5)
    static = StaticKVCache(SEQ)
    net(x[:, :3], prefix_attn_len=3, cache=static)
    with pytest.raises(ValueError, match="reaches past the cached positions"):
        net(x[:, 3:4], prefix_attn_len=torch.tensor([3, 4]), cache=static)
    with pytest.raises(ValueError, match="'prefix_attn_len' and 'mems'"):
        recurrent = TransformerWrapper(
            num_tokens=NUM_TOKENS,
            max_seq_len=MAX_SEQ_LEN,
            attn_layers=net.attn_layers,
            max_mem_len=4,
        ).double()
        _, mems = recurrent(x, return_mems=True)
        recurrent(x, mems=mems, prefix_attn_len=2)
