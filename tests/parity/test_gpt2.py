"""GPT-2: ``transformers.GPT2LMHeadModel`` -> ``TransformerWrapper`` and back, exact logits in
float64, greedy generation with the KV cache token for token."""

from __future__ import annotations

import pytest
import torch

from tests.parity.helpers import max_difference, padded_batch, perturb, report
from x_transformers import AutoregressiveWrapper
from x_transformers.hub.families import UnsupportedConfigError
from x_transformers.hub.gpt2 import from_hf_gpt2, to_hf_gpt2

transformers = pytest.importorskip("transformers")


def tiny_gpt2(attn="eager", **overrides):
    config = transformers.GPT2Config(
        vocab_size=67,
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=4,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        **overrides,
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).double().eval()
    model.config._attn_implementation = attn
    perturb(model)
    return model


@pytest.mark.parametrize(
    "overrides",
    [{}, {"tie_word_embeddings": False, "n_inner": 40}, {"activation_function": "relu"}],
    ids=["tied", "untied_inner", "relu"],
)
def test_logits_match_on_a_padded_batch(overrides):
    hf = tiny_gpt2(**overrides)
    ours = from_hf_gpt2(hf)
    ids, mask = padded_batch(67, [11, 7, 3])
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask.long()).logits
        got = ours(ids, mask=mask)
    report("GPT-2", f"logits {list(overrides) or 'default'}", max_difference(got, expected, mask))


def test_greedy_generation_with_kv_cache_matches_generate():
    hf = tiny_gpt2()
    ours = AutoregressiveWrapper(from_hf_gpt2(hf))
    prompt = torch.randint(1, 67, (2, 5), generator=torch.Generator().manual_seed(3))
    expected = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=12,
        do_sample=False,
        pad_token_id=0,
        eos_token_id=None,
    )[:, prompt.shape[1] :]
    got = ours.generate(prompt, 12, temperature=0.0, cache_kv=True)
    assert torch.equal(got, expected), f"{got}\n{expected}"


def test_export_back_gives_the_reference_logits():
    hf = tiny_gpt2()
    exported = to_hf_gpt2(from_hf_gpt2(hf))
    exported.config._attn_implementation = "eager"
    ids, mask = padded_batch(67, [9, 4])
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask.long()).logits
        got = exported(input_ids=ids, attention_mask=mask.long()).logits
    report("GPT-2", "exported logits", max_difference(got, expected, mask), limit=0.0)
    for (name, a), (_, b) in zip(hf.state_dict().items(), exported.state_dict().items()):
        assert torch.equal(a, b), name


def test_unsupported_settings_are_named():
    with pytest.raises(UnsupportedConfigError, match="scale_attn_by_inverse_layer_idx"):
        from_hf_gpt2(tiny_gpt2(scale_attn_by_inverse_layer_idx=True))
    with pytest.raises(UnsupportedConfigError, match="activation_function"):
        from_hf_gpt2(tiny_gpt2(activation_function="quick_gelu"))


def test_export_refuses_a_model_gpt2_cannot_express():
    from x_transformers import Decoder, TransformerWrapper

    model = TransformerWrapper(
        num_tokens=67,
        max_seq_len=32,
        tie_embedding=True,
        attn_layers=Decoder(
            dim=32,
            depth=2,
            heads=4,
            attn_dim_head=8,
            attn_qkv_bias=True,
            attn_out_bias=True,
            ff_activation="gelu_tanh",
            rotary_pos_emb=True,
        ),
    )
    with pytest.raises(UnsupportedConfigError, match="rotary_pos_emb"):
        to_hf_gpt2(model)
