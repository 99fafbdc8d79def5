"""Reversible layers (RevNet 1707.04585, Reformer 2001.04451): the coupling, its hand-written
backward pass against plain autograd, RNG replay, the refused combinations, and the claim that
the activations saved for the backward pass do not grow with depth."""

from __future__ import annotations

import pytest
import torch

from x_transformers import CrossAttender, Decoder, Encoder, XTransformer
from x_transformers.generation.kv_cache import DynamicKVCache
from x_transformers.layers import reversible
from x_transformers.options.blocks import REVERSIBLE_CONFLICTS

DIM, HEADS, DIM_HEAD, BATCH, SEQ = 16, 2, 8, 2, 6


def stack_of(cls=Encoder, depth=2, seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs = {"heads": HEADS, "attn_dim_head": DIM_HEAD, "reversible": True, **kwargs}
    return cls(dim=DIM, depth=depth, **kwargs).double()


def inputs(seed=1, seq=SEQ, dim=DIM):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, seq, dim, generator=generator, dtype=torch.float64)


def coupling_formula(stack, x, context=None):
    """The coupling written out: y1 = x1 + F(x2), y2 = x2 + G(y1) per unit of attention blocks
    and one feedforward, F / G the pre-norm branches without residual (F of an (a, c) unit is
    fa(x2) + fc(x2 + fa(x2))), on (x1, x2) = (x, x); out = norm((y1 + y2) / 2)."""
    x1, x2, f_out, stream = x, x, 0, x
    for kind, block in zip(stack.layer_kinds, stack.blocks):
        h = block.pre_branch_norm(stream) if kind != "f" else None
        if kind == "a":
            out, _ = block.branch(h)
        elif kind == "c":
            out, _ = block.branch(h, context=context)
        else:
            y1 = x1 + f_out
            y2 = x2 + block.branch(block.pre_branch_norm(y1))
            x1, x2, f_out, stream = y1, y2, 0, y2
            continue
        f_out, stream = f_out + out, stream + out
    return stack.final_norm((x1 + x2) / 2)


def gradients(stack, x, run, seed=5):
    """Output and gradients (input first, then every parameter) of ``run(stack, x)``."""
    x = x.clone().requires_grad_()
    stack.zero_grad()
    torch.manual_seed(seed)
    out = run(stack, x)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device)
    (out * weights.view_as(out)).sum().backward()
    return out.detach(), [x.grad, *(p.grad for p in stack.parameters())]


def assert_all_close(first, second, tol=1e-10, skipped_blocks=False):
    """Equal gradients; ``skipped_blocks``: stochastic depth may leave a block without any."""
    assert len(first) == len(second)
    for a, b in zip(first, second):
        if skipped_blocks and a is None and b is None:
            continue
        assert a is not None and b is not None
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("cls", [Decoder, CrossAttender], ids=["decoder_cross", "cross_attender"])
def test_output_with_cross_attention_equals_the_coupling_formula(cls):
    kwargs = {"cross_attend": True} if cls is Decoder else {}
    stack = stack_of(cls, depth=2, **kwargs).eval()
    x, context = inputs(), inputs(seed=3, seq=4)
    with torch.no_grad():
        expected = coupling_formula(stack, x, context)
        torch.testing.assert_close(stack(x, context=context), expected, rtol=1e-12, atol=1e-12)


def test_output_equals_the_coupling_formula():
    stack = stack_of(depth=3).eval()
    x = inputs()
    with torch.no_grad():
        torch.testing.assert_close(stack(x), coupling_formula(stack, x), rtol=1e-12, atol=1e-12)
    # the reversible stack is a different function from the plain one on the same weights
    plain = stack_of(depth=3, reversible=False).eval()
    plain.load_state_dict(stack.state_dict())
    with torch.no_grad():
        assert not torch.allclose(plain(x), stack(x))


@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["no_dropout", "dropout"])
def test_gradients_equal_plain_autograd_of_the_formula(dropout):
    stack = stack_of(depth=3, attn_dropout=dropout, ff_dropout=dropout).train()
    x = inputs()
    out, grads = gradients(stack, x, lambda s, h: s(h))
    expected_out, expected = gradients(stack, x, coupling_formula)
    torch.testing.assert_close(out, expected_out, rtol=1e-10, atol=1e-10)
    assert_all_close(grads, expected)
    if dropout:  # the dropout really is active: another seed gives another output
        other, _ = gradients(stack, x, lambda s, h: s(h), seed=6)
        assert not torch.allclose(out, other)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_dropout_is_replayed_on_cuda():
    """The CUDA RNG state is saved and restored per F and G."""
    stack = stack_of(depth=3, attn_dropout=0.3, ff_dropout=0.3).cuda().train()
    x = inputs().cuda()
    out, grads = gradients(stack, x, lambda s, h: s(h))
    expected_out, expected = gradients(stack, x, coupling_formula)
    torch.testing.assert_close(out, expected_out, rtol=1e-10, atol=1e-10)
    assert_all_close(grads, expected)


def autograd_through_the_coupling(monkeypatch):
    """Replace the hand-written backward by plain autograd through the same coupling."""
    monkeypatch.setattr(
        reversible.ReversibleFunction, "apply", lambda coupling, x, *rest: coupling.forward(x, x)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(cross_attend=True, rotary_pos_emb=True, attn_dropout=0.2, layer_dropout=0.3),
        dict(rel_pos_bias=True, ff_glu=True, sandwich_norm=True, attn_sublayer_dropout=0.2),
        dict(dynamic_pos_bias=True, shift_tokens=1, use_rezero=True, attn_num_mem_kv=2),
        dict(alibi_pos_bias=True, use_rmsnorm=True, custom_layers=("a", "c", "f", "a", "c", "f")),
    ],
    ids=["cross_rotary_layer_dropout", "t5_sandwich", "dynamic_shift_rezero", "alibi_custom"],
)
def test_hand_written_backward_equals_plain_autograd(kwargs, monkeypatch):
    """Masks, context (its gradient too), positional parameters, stochastic depth, ReZero."""
    cross = kwargs.get("cross_attend") or "custom_layers" in kwargs
    kwargs = {"cross_attend": True, **kwargs} if cross else kwargs
    stack = stack_of(Decoder, depth=2, **kwargs).train()
    if "use_rezero" in kwargs:  # open the zero-initialised gates
        for name, param in stack.named_parameters():
            if name.endswith("gate"):
                param.data.fill_(0.7)
    context = inputs(seed=3, seq=4).requires_grad_() if cross else None
    mask = torch.ones(BATCH, SEQ, dtype=torch.bool)
    mask[0, -2:] = False

    def run(s, h):
        return s(h, mask=mask, context=context)

    x = inputs()
    out, grads = gradients(stack, x, run)
    context_grad = context.grad.clone() if cross else None
    if cross:
        context.grad = None
    with monkeypatch.context() as patch:
        autograd_through_the_coupling(patch)
        expected_out, expected = gradients(stack, x, run)
    torch.testing.assert_close(out, expected_out, rtol=1e-10, atol=1e-10)
    assert_all_close(grads, expected, skipped_blocks="layer_dropout" in kwargs)
    if cross:
        torch.testing.assert_close(context_grad, context.grad, rtol=1e-10, atol=1e-10)


def test_backward_leaves_the_global_rng_untouched():
    stack = stack_of(attn_dropout=0.5).train()
    torch.manual_seed(0)
    out = stack(inputs().requires_grad_())
    before = torch.get_rng_state()
    out.sum().backward()
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("keyword", sorted(REVERSIBLE_CONFLICTS))
def test_conflicting_keywords_are_refused_naming_both(keyword):
    value = 2 if keyword in ("sandwich_coef", "par_ratio", "num_residual_streams") else True
    # cross-attention keywords are refused without cross_attend (options/routing.py)
    extra = {"cross_attend": True} if keyword.startswith("cross_") else {}
    with pytest.raises(ValueError, match=f"'reversible'.*'{keyword}'"):
        Encoder(dim=DIM, depth=2, reversible=True, **{keyword: value}, **extra)


@pytest.mark.parametrize(
    "kwargs, named",
    [
        (dict(pre_norm=False), "pre_norm"),
        (dict(custom_layers=("a", "a", "f", "f")), "custom_layers"),
        (dict(custom_layers=("f", "a")), "custom_layers"),
    ],
)
def test_unpairable_or_post_norm_stacks_are_refused(kwargs, named):
    with pytest.raises(ValueError, match=f"'reversible'.*{named}"):
        Encoder(dim=DIM, depth=2, reversible=True, **kwargs)


def test_call_time_refusals_name_the_input():
    stack = stack_of(Decoder).train()
    x = inputs().requires_grad_()
    with pytest.raises(ValueError, match="'reversible' and 'mems'"):
        stack(x, mems=[inputs(seq=3), inputs(seq=3)])
    with pytest.raises(ValueError, match="'reversible' and 'cache'"):
        stack(x, cache=DynamicKVCache())
    with pytest.raises(ValueError, match="'reversible' and 'return_attn'"):
        stack(x, return_attn=True, return_hiddens=True)


def test_wrapper_with_xl_memories_is_refused_at_construction():
    from x_transformers import TransformerWrapper

    with pytest.raises(ValueError, match="'reversible' and 'max_mem_len'"):
        TransformerWrapper(
            num_tokens=8, max_seq_len=8, max_mem_len=4, attn_layers=stack_of(Decoder)
        )


def test_hiddens_are_the_branch_streams_without_gradients_and_none_with_them():
    stack = stack_of(Decoder, depth=2)
    x = inputs()
    with torch.no_grad():
        _, intermediates = stack(x, return_hiddens=True)
    # unit 1 reads x2 = x (attention), then y1 = x + F(x) (feedforward); unit 2 the next streams
    first_attention = stack.blocks[0].branch(stack.blocks[0].pre_branch_norm(x))[0]
    assert len(intermediates.hiddens) == 4 and len(intermediates.self_attention_inputs) == 2
    torch.testing.assert_close(intermediates.hiddens[0], x)
    torch.testing.assert_close(intermediates.hiddens[1], x + first_attention)
    assert intermediates.self_attention_inputs[0] is intermediates.hiddens[0]
    _, intermediates = stack(x.requires_grad_(), return_hiddens=True)
    assert intermediates.hiddens is None and intermediates.self_attention_inputs is None


def test_inference_with_the_kv_cache_and_return_attn():
    stack = stack_of(Decoder, depth=2, rotary_pos_emb=True).eval()
    x = inputs()
    with torch.no_grad():
        full, intermediates = stack(x, return_hiddens=True, return_attn=True)
        cache = DynamicKVCache()
        steps = [stack(x[:, :3], cache=cache)] + [
            stack(x[:, t : t + 1], cache=cache) for t in range(3, SEQ)
        ]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-10, atol=1e-10)
    assert len(intermediates.attn_maps) == 2


def test_xtransformer_routes_enc_and_dec_reversible():
    torch.manual_seed(0)
    model = XTransformer(
        dim=DIM,
        enc_num_tokens=11,
        enc_depth=2,
        enc_max_seq_len=8,
        dec_num_tokens=11,
        dec_depth=2,
        dec_max_seq_len=8,
        enc_reversible=True,
        dec_reversible=True,
    )
    assert model.encoder.attn_layers.reversible_units is not None
    assert model.decoder.net.attn_layers.reversible_units is not None
    src, tgt = torch.randint(0, 11, (2, 8)), torch.randint(0, 11, (2, 8))
    model(src, tgt).backward()
    assert all(p.grad is not None for p in model.encoder.parameters() if p.requires_grad)


def saved_activation_bytes(stack, x) -> int:
    """Bytes saved for the backward pass by one forward, the parameters' own storage aside."""
    parameters = {p.untyped_storage().data_ptr() for p in stack.parameters()}
    total = 0

    def pack(tensor):
        nonlocal total
        if tensor.untyped_storage().data_ptr() not in parameters:
            total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        stack(x)
    return total


def test_saved_bytes_do_not_grow_with_depth():
    x = inputs().requires_grad_()
    one_activation = x.numel() * x.element_size()
    saved = {
        (depth, rev): saved_activation_bytes(stack_of(depth=depth, reversible=rev).train(), x)
        for depth in (2, 8)
        for rev in (True, False)
    }
    reversible_growth = (saved[8, True] - saved[2, True]) / 6
    plain_growth = (saved[8, False] - saved[2, False]) / 6
    assert plain_growth > 10 * one_activation, saved  # the counter sees the plain activations
    assert reversible_growth <= one_activation, saved
    assert saved[8, True] < saved[8, False] / 5, saved
