"""Llama: ``transformers.LlamaForCausalLM`` -> ``TransformerWrapper`` and back, exact logits in
float64, greedy generation with the KV cache token for token.

The reference computes two steps in float32 even inside a float64 model: ``LlamaRMSNorm``
(``hidden_states.to(torch.float32)``) and ``LlamaRotaryEmbedding`` (float32 inverse frequencies
and angles). The fixture patches exactly those two steps to run in the input's dtype, so the
comparison is float64 against float64 at 1e-10; the library never copies the float32 steps.
"""

from __future__ import annotations

import pytest
import torch

from tests.parity.helpers import max_difference, padded_batch, perturb, report
from x_transformers import AutoregressiveWrapper
from x_transformers.hub.families import UnsupportedConfigError
from x_transformers.hub.llama import from_hf_llama, to_hf_llama

transformers = pytest.importorskip("transformers")
modeling_llama = pytest.importorskip("transformers.models.llama.modeling_llama")


def rms_norm_in_input_dtype(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def rotary_in_input_dtype(self, x, position_ids):
    dim = self.inv_freq.shape[0] * 2
    exponents = torch.arange(0, dim, 2, dtype=x.dtype, device=x.device) / dim
    inv_freq = 1.0 / (self.config.rope_parameters["rope_theta"] ** exponents)
    freqs = position_ids[..., None].to(x.dtype) * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


@pytest.fixture
def float64_reference(monkeypatch):
    """Patch the reference's two float32 steps (RMSNorm variance, rotary angles)."""
    monkeypatch.setattr(modeling_llama.LlamaRMSNorm, "forward", rms_norm_in_input_dtype)
    monkeypatch.setattr(modeling_llama.LlamaRotaryEmbedding, "forward", rotary_in_input_dtype)


def tiny_llama(attn="sdpa", **overrides):
    settings = dict(
        vocab_size=71,
        hidden_size=32,
        intermediate_size=52,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 500.0},
        pad_token_id=0,
    )
    settings.update(overrides)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**settings)).double().eval()
    model.config._attn_implementation = attn
    perturb(model)
    return model


CONFIGS = {
    "gqa": {},
    "mha_biases_tied": {
        "num_key_value_heads": 4,
        "attention_bias": True,
        "mlp_bias": True,
        "tie_word_embeddings": True,
    },
    "mqa_head_dim": {"num_key_value_heads": 1, "head_dim": 16},
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_match_on_a_padded_batch(float64_reference, name):
    hf = tiny_llama(**CONFIGS[name])
    ours = from_hf_llama(hf)
    ids, mask = padded_batch(71, [13, 8, 2])
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask.long()).logits
        got = ours(ids, mask=mask)
    report("Llama", f"logits {name}", max_difference(got, expected, mask))


def test_unpatched_reference_within_float32_steps():
    """Without the patch the reference rounds its RMSNorm input and rotary angles to float32
    (epsilon ~1.2e-7 relative, through two layers to logits of magnitude ~4): the measured
    ~1.5e-6 is that rounding, not the conversion, which the patched tests bound at 1e-10."""
    hf = tiny_llama()
    ours = from_hf_llama(hf)
    ids, mask = padded_batch(71, [10, 6])
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask.long()).logits
        got = ours(ids, mask=mask)
    report(
        "Llama",
        "logits (reference float32 RMSNorm/rotary)",
        max_difference(got, expected, mask),
        1e-5,
    )


def test_greedy_generation_with_kv_cache_matches_generate(float64_reference):
    hf = tiny_llama()
    ours = AutoregressiveWrapper(from_hf_llama(hf))
    prompt = torch.randint(1, 71, (2, 6), generator=torch.Generator().manual_seed(4))
    expected = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=14,
        do_sample=False,
        pad_token_id=0,
        eos_token_id=None,
    )[:, prompt.shape[1] :]
    got = ours.generate(prompt, 14, temperature=0.0, cache_kv=True)
    assert torch.equal(got, expected), f"{got}\n{expected}"


def test_export_back_gives_the_reference_logits(float64_reference):
    hf = tiny_llama(**CONFIGS["mha_biases_tied"])
    exported = to_hf_llama(from_hf_llama(hf))
    ids, mask = padded_batch(71, [9, 5])
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask.long()).logits
        got = exported(input_ids=ids, attention_mask=mask.long()).logits
    report("Llama", "exported logits", max_difference(got, expected, mask), limit=0.0)
    assert hf.state_dict().keys() == exported.state_dict().keys()
    for name, tensor in hf.state_dict().items():
        assert torch.equal(tensor, exported.state_dict()[name]), name


def test_unsupported_settings_are_named():
    scaled = {"rope_type": "linear", "rope_theta": 500.0, "factor": 2.0}
    with pytest.raises(UnsupportedConfigError, match="rope_type"):
        from_hf_llama(tiny_llama(rope_parameters=scaled))
    with pytest.raises(UnsupportedConfigError, match="hidden_act"):
        from_hf_llama(tiny_llama(hidden_act="gelu"))


def test_export_refuses_a_model_llama_cannot_express():
    model = from_hf_llama(tiny_llama())
    from x_transformers import Decoder, TransformerWrapper

    layers = model.attn_layers.config
    other = TransformerWrapper(
        num_tokens=71,
        max_seq_len=64,
        use_abs_pos_emb=False,
        attn_layers=Decoder(
            dim=32,
            depth=2,
            heads=4,
            attn_dim_head=8,
            attn_kv_heads=2,
            rotary_pos_emb=True,
            rotary_theta=500.0,
            use_rmsnorm=True,
            norm_eps=1e-6,
            ff_glu=True,
            ff_activation="silu",
            ff_inner_dim=52,
            ff_no_bias=True,
            attn_qk_rmsnorm=True,
        ),
    )
    assert layers.attention.qk_rmsnorm is False
    with pytest.raises(UnsupportedConfigError, match="qk_rmsnorm"):
        to_hf_llama(other)
