"""Linear weights stored input-major (x_transformers/weight_layout.py): same values, shapes,
state dict and training as ``nn.Linear``, and the layout survives what a user does with a model
(dtype / device moves, save and load, training, generation)."""

from __future__ import annotations

import torch
from torch import nn

from x_transformers import AutoregressiveWrapper, Decoder, TransformerWrapper
from x_transformers.weight_layout import (
    is_input_major,
    linear,
    linear_weights,
    store_input_major,
)


def small_model(**wrapper_kwargs):
    torch.manual_seed(0)
    return TransformerWrapper(
        num_tokens=32,
        max_seq_len=16,
        attn_layers=Decoder(dim=16, depth=1, heads=2),
        **wrapper_kwargs,
    )


def test_linear_is_nn_linear_with_the_same_initial_values_stored_input_major():
    torch.manual_seed(3)
    expected = nn.Linear(12, 20)
    torch.manual_seed(3)
    layer = linear(12, 20)
    assert type(layer) is nn.Linear and layer.weight.shape == (20, 12)
    assert is_input_major(layer.weight) and not layer.weight.is_contiguous()
    assert torch.equal(layer.weight, expected.weight) and torch.equal(layer.bias, expected.bias)
    x = torch.randn(3, 12, dtype=torch.float64)
    torch.testing.assert_close(layer.double()(x), expected.double()(x), rtol=1e-12, atol=1e-12)


def test_the_layout_survives_dtype_moves_and_a_training_step():
    model = small_model().double()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = model(torch.randint(0, 32, (2, 8))).pow(2).mean()
    loss.backward()
    for name, weight in linear_weights(model).items():
        assert is_input_major(weight), name
        assert weight.grad.stride() == weight.stride(), f"{name}: gradient in another layout"
    optimizer.step()
    assert all(is_input_major(w) for w in linear_weights(model).values())


def test_store_input_major_keeps_the_parameters_and_values_and_skips_tied_embeddings():
    model = small_model(tie_embedding=True)
    for module in model.modules():  # as after load_state_dict(..., assign=True)
        if isinstance(module, nn.Linear):
            module.weight.data = module.weight.data.contiguous()
    before = {name: (param, param.detach().clone()) for name, param in model.named_parameters()}
    with torch.inference_mode():  # generation may run in inference mode
        assert store_input_major(model) is model
    for name, param in model.named_parameters():
        assert param is before[name][0] and torch.equal(param, before[name][1]), name
    assert all(is_input_major(w) for w in linear_weights(model).values())
    assert model.token_emb.weight.is_contiguous()  # gathered by rows: left alone
    model(torch.randint(0, 32, (1, 4))).sum().backward()  # still trainable (no inference tensor)


def test_from_pretrained_stores_the_loaded_weights_input_major(tmp_path):
    model = small_model()
    model.save_pretrained(tmp_path)
    loaded = TransformerWrapper.from_pretrained(tmp_path)
    assert all(is_input_major(w) for w in linear_weights(loaded).values())
    x = torch.randint(0, 32, (2, 6))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))


def test_load_state_dict_copies_into_the_layout():
    source, target = small_model(), small_model()
    target.load_state_dict({k: v.contiguous() for k, v in source.state_dict().items()})
    assert all(is_input_major(w) for w in linear_weights(target).values())


def test_generation_reads_the_same_weights_in_either_layout():
    """Greedy tokens from the input-major model equal those of the same weights row-major."""
    model = small_model().double().eval()
    row_major = small_model().double().eval()
    for module in row_major.modules():
        if isinstance(module, nn.Linear):
            module.weight.data = module.weight.data.contiguous()
    prompt = torch.randint(0, 32, (2, 3))
    tokens = [
        AutoregressiveWrapper(m).generate(prompt, 6, temperature=0.0) for m in (model, row_major)
    ]
    assert torch.equal(*tokens)


def test_store_row_major_gives_fsdp_contiguous_weights_with_the_same_values():
    model = small_model()
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    from x_transformers.weight_layout import store_row_major

    assert store_row_major(model) is model
    assert all(param.is_contiguous() for param in model.parameters())
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]), name
    store_input_major(model)
    assert all(is_input_major(w) for w in linear_weights(model).values())
