"""Activation checkpointing of every block (``checkpoint_blocks=True``, 1604.06174): the same
outputs and gradients as the plain stack for every trainable row of the feature matrix, fewer
bytes saved for the backward pass, and no effect without gradients."""

from __future__ import annotations

import pytest
import torch

from tests.feature_matrix import CASES, NUM_TOKENS, build_model
from x_transformers import Decoder, Encoder, XTransformer
from x_transformers.generation.kv_cache import DynamicKVCache

SEQ = 10


def tokens(batch=2, seq=SEQ, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, NUM_TOKENS, (batch, seq), generator=generator)


def training_step(model, x, seed=3):
    """Output and every parameter's gradient of one training forward and backward."""
    model.train().zero_grad()
    torch.manual_seed(seed)
    out = model(x)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    (out * weights).sum().backward()
    return out.detach(), {name: p.grad for name, p in model.named_parameters()}


# every row, on the first stack kind it applies to (reversible rows: a reversible stack already
# recomputes, and 'checkpoint_blocks' with it is refused)
ROWS = [
    pytest.param(row, "decoder" if row.applies_to("decoder") else "encoder", id=row.id)
    for row in CASES
    if not row.layer_kwargs.get("reversible")
]


@pytest.mark.parametrize("row, kind", ROWS)
def test_checkpointed_equals_plain(row, kind):
    plain = build_model(row, kind)
    checkpointed = build_model(row, kind, checkpoint_blocks=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = tokens()
    out, grads = training_step(plain, x)
    checkpointed_out, checkpointed_grads = training_step(checkpointed, x)
    torch.testing.assert_close(checkpointed_out, out, rtol=1e-12, atol=1e-12)
    assert grads.keys() == checkpointed_grads.keys()
    for name, grad in grads.items():
        if grad is None:
            assert checkpointed_grads[name] is None, name
        else:
            torch.testing.assert_close(checkpointed_grads[name], grad, rtol=1e-10, atol=1e-12)


def saved_activation_bytes(stack, x) -> int:
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


def test_checkpointing_saves_only_block_inputs():
    x = torch.randn(2, 8, 16, dtype=torch.float64, requires_grad=True)
    saved = {}
    for checkpoint_blocks in (False, True):
        torch.manual_seed(0)
        stack = Encoder(dim=16, depth=4, heads=2, checkpoint_blocks=checkpoint_blocks).double()
        saved[checkpoint_blocks] = saved_activation_bytes(stack.train(), x)
    one_activation = x.numel() * x.element_size()
    assert saved[True] <= 10 * one_activation, saved  # 8 block inputs, the final norm
    assert saved[True] < saved[False] / 5, saved


def test_residual_attention_sees_the_scores_of_its_first_run():
    """The recomputation restores the forward's state as the block first saw it."""
    plain = Decoder(dim=16, depth=3, heads=2, residual_attn=True, add_value_residual=True)
    checkpointed = Decoder(
        dim=16,
        depth=3,
        heads=2,
        residual_attn=True,
        add_value_residual=True,
        checkpoint_blocks=True,
    )
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 5, 16)
    first, second = training_step(plain, x)[1], training_step(checkpointed, x)[1]
    for name, grad in first.items():
        torch.testing.assert_close(second[name], grad, msg=name)


def test_without_gradients_and_with_a_cache_nothing_is_checkpointed():
    torch.manual_seed(0)
    plain = Decoder(dim=16, depth=2, heads=2, rotary_pos_emb=True).double().eval()
    checkpointed = Decoder(dim=16, depth=2, heads=2, rotary_pos_emb=True, checkpoint_blocks=True)
    checkpointed.double().eval().load_state_dict(plain.state_dict())
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    with torch.no_grad():
        cache = DynamicKVCache()
        steps = [checkpointed(x[:, :3], cache=cache), checkpointed(x[:, 3:], cache=cache)]
        torch.testing.assert_close(torch.cat(steps, dim=1), plain(x))


def test_xtransformer_routes_checkpoint_blocks():
    model = XTransformer(
        dim=16,
        enc_num_tokens=11,
        enc_depth=1,
        enc_max_seq_len=8,
        dec_num_tokens=11,
        dec_depth=1,
        dec_max_seq_len=8,
        enc_checkpoint_blocks=True,
        dec_checkpoint_blocks=True,
    )
    assert model.encoder.attn_layers.call_block is not None
    assert model.decoder.net.attn_layers.call_block is not None


def test_checkpoint_blocks_with_reversible_is_refused():
    with pytest.raises(ValueError, match="'reversible'.*'checkpoint_blocks'"):
        Encoder(dim=16, depth=2, reversible=True, checkpoint_blocks=True)
