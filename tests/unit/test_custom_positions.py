"""Forward inputs of issue 15: custom positions ``pos=``, ``self_attn_kv_mask=``, per-head
``attn_mask`` (b, h, i, j); and the stack keywords ``rel_pos_kwargs`` and
``cross_attn_dim_context``."""

from __future__ import annotations

import pytest
import torch

from x_transformers import Decoder, Encoder, TransformerWrapper

NUM_TOKENS, DIM, HEADS = 23, 16, 2
NO_ABS = {"use_abs_pos_emb": False}
TIGHT = {"rtol": 1e-10, "atol": 1e-10}

# every positional scheme: (wrapper keywords, layer keywords)
SCHEMES = {
    "rotary": (NO_ABS, {"rotary_pos_emb": True}),
    "rotary_xpos": (NO_ABS, {"rotary_xpos": True, "rotary_xpos_scale_base": 8}),
    "t5": (NO_ABS, {"rel_pos_bias": True, "rel_pos_num_buckets": 8, "rel_pos_max_distance": 6}),
    "dynamic": (NO_ABS, {"dynamic_pos_bias": True}),
    "alibi": (NO_ABS, {"alibi_pos_bias": True}),
    "infused": (NO_ABS, {"position_infused_attn": True}),
    "learned_abs": ({}, {}),
    "sinusoidal_abs": ({"sinusoidal_pos_emb": True}, {}),
    "abs_with_memory_tokens_rotary": ({"num_memory_tokens": 2}, {"rotary_pos_emb": True}),
}


def model(stack=Decoder, wrapper_kwargs=None, max_seq_len=32, **layer_kwargs):
    torch.manual_seed(0)
    layers = stack(dim=DIM, depth=2, heads=HEADS, attn_dim_head=8, **layer_kwargs)
    net = TransformerWrapper(
        num_tokens=NUM_TOKENS,
        max_seq_len=max_seq_len,
        attn_layers=layers,
        **(wrapper_kwargs or {}),
    )
    return net.double().eval()


def tokens(batch=2, seq=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, NUM_TOKENS, (batch, seq), generator=generator)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("stack", [Decoder, Encoder])
def test_pos_arange_is_exactly_the_default(scheme, stack):
    wrapper_kwargs, layer_kwargs = SCHEMES[scheme]
    net, x = model(stack, wrapper_kwargs, **layer_kwargs), tokens()
    with torch.no_grad():
        default = net(x)
        assert torch.equal(net(x, pos=torch.arange(8)), default)
        torch.testing.assert_close(net(x, pos=torch.arange(8).expand(2, -1)), default, **TIGHT)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("stack", [Decoder, Encoder])
def test_positions_with_gaps_equal_a_longer_sequence_at_those_positions(scheme, stack):
    """Row b's tokens at positions ``pos[b]`` (increasing, with gaps and a shift) give the
    outputs that a longer sequence gives at those positions when every other position is
    padding: every scheme reads the positions (or their differences), not the indices."""
    wrapper_kwargs, layer_kwargs = SCHEMES[scheme]
    net = model(stack, wrapper_kwargs, **layer_kwargs)
    pos = torch.tensor([[3, 4, 6, 9, 10, 11, 15, 16], [0, 2, 3, 5, 8, 12, 13, 20]])
    x = tokens()
    with torch.no_grad():
        custom = net(x, pos=pos)
        for row in range(2):
            longer = tokens(batch=1, seq=21, seed=row + 5)
            longer[0, pos[row]] = x[row]
            kept = torch.zeros(1, 21, dtype=torch.bool)
            kept[0, pos[row]] = True
            expected = net(longer, mask=kept)[0, pos[row]]
            torch.testing.assert_close(custom[row], expected, **TIGHT)


def test_shifted_rotary_positions_equal_a_longer_sequence():
    """Rotary alone (no absolute table): x at positions 5..12 equals the tail of a sequence of
    13 whose first 5 positions are padding, and differs from x at 0..7 once the positions enter
    through something absolute (position-infused attention)."""
    net = model(Encoder, NO_ABS, rotary_pos_emb=True, position_infused_attn=True)
    x, pos = tokens(), torch.arange(5, 13)
    longer = torch.cat((tokens(seq=5, seed=3), x), dim=1)
    kept = torch.ones(2, 13, dtype=torch.bool)
    kept[:, :5] = False
    with torch.no_grad():
        shifted = net(x, pos=pos)
        torch.testing.assert_close(shifted, net(longer, mask=kept)[:, 5:], **TIGHT)
        assert (shifted - net(x)).abs().max() > 1e-6


def test_pos_reaches_the_learned_absolute_embedding():
    net = model(Encoder)
    x = tokens()
    with torch.no_grad():
        assert (net(x, pos=torch.arange(8) + 3) - net(x)).abs().max() > 1e-6
    with pytest.raises(ValueError, match="max_seq_len=32"):
        net(x, pos=torch.arange(8) + 30)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda net, x: net(x, pos=torch.arange(7)), "'pos' must have shape"),
        (lambda net, x: net(x, pos=torch.arange(8.0)), "integer tensor"),
        (
            lambda net, x: net(x, pos=torch.arange(8), seq_start_pos=torch.tensor([0, 1])),
            "seq_start_pos",
        ),
    ],
)
def test_pos_refusals(call, match):
    net = model(Decoder, NO_ABS, rotary_pos_emb=True)
    with pytest.raises((TypeError, ValueError), match=match):
        call(net, tokens())


def test_pos_is_refused_with_a_cache_and_with_memories():
    net = model(Decoder, {**NO_ABS, "max_mem_len": 8}, rotary_pos_emb=True)
    x = tokens()
    _, cache = net(x, return_intermediates=True)
    with pytest.raises(ValueError, match="'pos'.*'cache'"):
        net(x[:, :1], cache=cache, pos=torch.tensor([8]))
    _, mems = net(x, return_mems=True)
    with pytest.raises(ValueError, match="'pos'.*'mems'"):
        net(x, mems=mems, pos=torch.arange(8))
    # return_intermediates with pos records no cache (it could not continue)
    _, intermediates = net(x, pos=torch.arange(8), return_intermediates=True)
    assert intermediates.cache is None


# --- masks ---------------------------------------------------------------------------------


def changed_at(x, index):
    changed = x.clone()
    changed[:, index] = (changed[:, index] + 7) % NUM_TOKENS
    return changed


def test_self_attn_kv_mask_hides_keys_but_keeps_queries():
    net = model(Encoder, NO_ABS, rel_pos_bias=True)
    x = tokens()
    kv_mask = torch.ones(2, 8, dtype=torch.bool)
    kv_mask[0, 2] = kv_mask[1, 5] = False
    changed = x.clone()
    changed[0, 2], changed[1, 5] = (x[0, 2] + 7) % NUM_TOKENS, (x[1, 5] + 7) % NUM_TOKENS
    with torch.no_grad():
        before = net(x, self_attn_kv_mask=kv_mask)
        after = net(changed, self_attn_kv_mask=kv_mask)
        # a hidden key has no influence on any other position; its own output still changes
        for row, hidden in ((0, 2), (1, 5)):
            others = [t for t in range(8) if t != hidden]
            torch.testing.assert_close(before[row, others], after[row, others], **TIGHT)
            assert (before[row, hidden] - after[row, hidden]).abs().max() > 1e-6
        # without the key mask the change reaches everybody
        assert (net(x)[:, 0] - net(changed)[:, 0]).abs().max() > 1e-6


def test_self_attn_kv_mask_covers_memories_then_x():
    net = model(Decoder, {**NO_ABS, "max_mem_len": 8}, rotary_pos_emb=True)
    x = tokens()
    _, mems = net(x, return_mems=True)
    with pytest.raises(ValueError, match=r"\(batch, keys\) = \(2, 16\)"):
        net(x, mems=mems, self_attn_kv_mask=torch.ones(2, 8, dtype=torch.bool))
    kv_mask = torch.ones(2, 16, dtype=torch.bool)
    kv_mask[:, :8] = False  # hide every memory: the same as no memories at all
    with torch.no_grad():
        torch.testing.assert_close(net(x, mems=mems, self_attn_kv_mask=kv_mask), net(x), **TIGHT)


def test_self_attn_kv_mask_is_refused_with_a_cache():
    net = model(Decoder, NO_ABS, rotary_pos_emb=True)
    _, cache = net(tokens(), return_intermediates=True)
    with pytest.raises(ValueError, match="'self_attn_kv_mask'.*'cache'"):
        net(tokens(seq=1), cache=cache, self_attn_kv_mask=torch.ones(2, 9, dtype=torch.bool))


@pytest.mark.parametrize("flash", [False, True])
def test_attn_mask_per_head(flash):
    net = model(Encoder, NO_ABS, rotary_pos_emb=True, attn_flash=flash)
    x, other = tokens(), changed_at(tokens(), 3)
    mask = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.3
    mask |= torch.eye(8, dtype=torch.bool)
    per_head = mask[:, None].expand(-1, HEADS, -1, -1)
    # key 3 hidden from every other query in every head; then visible to query 0 in head 1
    hidden = torch.ones(2, HEADS, 8, 8, dtype=torch.bool)
    hidden[:, :, :, 3] = False
    hidden[:, :, 3, 3] = True
    one_head = hidden.clone()
    one_head[:, 1, 0, 3] = True
    keep = [0, 1, 2, 4, 5, 6, 7]
    with torch.no_grad():
        torch.testing.assert_close(net(x, attn_mask=per_head), net(x, attn_mask=mask), **TIGHT)
        before, after = net(x, attn_mask=hidden), net(other, attn_mask=hidden)
        torch.testing.assert_close(before[:, keep], after[:, keep], **TIGHT)
        seen = net(x, attn_mask=one_head)[:, 0] - net(other, attn_mask=one_head)[:, 0]
    assert seen.abs().max() > 1e-6
    with pytest.raises(ValueError, match="attn_mask"):
        net(x, attn_mask=torch.ones(2, HEADS + 1, 8, 8, dtype=torch.bool))


# --- stack keywords ------------------------------------------------------------------------


def test_rel_pos_kwargs_reach_the_bias():
    from x_transformers.positional import AlibiPositionalBias

    t5 = Decoder(
        dim=DIM, depth=1, rel_pos_bias=True, rel_pos_kwargs={"num_buckets": 8, "max_distance": 6}
    )
    bias = t5.positions.score_bias
    assert (bias.num_buckets, bias.max_distance, bias.embedding.num_embeddings) == (8, 6, 8)
    dynamic = Encoder(dim=DIM, depth=1, dynamic_pos_bias=True, rel_pos_kwargs={"depth": 3})
    assert len(dynamic.positions.score_bias.hidden) == 3
    alibi = Encoder(
        dim=DIM, depth=1, heads=4, alibi_pos_bias=True, rel_pos_kwargs={"num_alibi_heads": 2}
    )
    assert isinstance(alibi.positions.score_bias, AlibiPositionalBias)
    assert alibi.positions.score_bias.num_alibi_heads == 2


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"rel_pos_kwargs": {"num_buckets": 8}}, ValueError, "no effect without"),
        ({"rel_pos_bias": True, "rel_pos_kwargs": {"depth": 2}}, TypeError, "'depth'.*valid keys"),
        (
            {"rel_pos_bias": True, "rel_pos_num_buckets": 16, "rel_pos_kwargs": {"num_buckets": 8}},
            ValueError,
            "'rel_pos_kwargs'.*'rel_pos_num_buckets'",
        ),
        (
            {"rel_pos_bias": True, "rel_pos_kwargs": [("num_buckets", 8)]},
            TypeError,
            "rel_pos_kwargs",
        ),
    ],
)
def test_rel_pos_kwargs_refusals(kwargs, error, match):
    with pytest.raises(error, match=match):
        Decoder(dim=DIM, depth=1, **kwargs)


def test_cross_attn_dim_context_is_dim_context():
    torch.manual_seed(0)
    aliased = Decoder(dim=DIM, depth=1, heads=HEADS, cross_attend=True, cross_attn_dim_context=12)
    torch.manual_seed(0)
    plain = Decoder(dim=DIM, depth=1, heads=HEADS, cross_attend=True, dim_context=12)
    assert aliased.dim_context == 12
    x, context = torch.randn(2, 5, DIM), torch.randn(2, 3, 12)
    torch.testing.assert_close(aliased(x, context=context), plain(x, context=context))
    with pytest.raises(ValueError, match="'dim_context'=8 and 'cross_attn_dim_context'=12"):
        Decoder(dim=DIM, depth=1, cross_attend=True, dim_context=8, cross_attn_dim_context=12)
    with pytest.raises(ValueError, match="only acts on cross-attention"):
        Decoder(dim=DIM, depth=1, cross_attn_dim_context=12)
