"""T5: ``transformers.T5ForConditionalGeneration`` -> ``XTransformer``: exact float64 logits on
padded source and target batches, for T5 v1.0 (relu, scaled tied logits) and v1.1 (gated
tanh-gelu, unscaled logits).

The reference computes the variance of its ``T5LayerNorm`` in float32
(``hidden_states.to(torch.float32).pow(2).mean(...)``) even in a float64 model; the fixture
patches that one step to the input's dtype, so the comparison is float64 against float64 at
1e-10. Its eager softmax runs in the input dtype, so nothing else is patched.
"""

from __future__ import annotations

import pytest
import torch

from tests.parity.helpers import max_difference, padded_batch, perturb, report
from x_transformers.hub.families import UnsupportedConfigError
from x_transformers.hub.t5 import from_hf_t5

transformers = pytest.importorskip("transformers")
modeling_t5 = pytest.importorskip("transformers.models.t5.modeling_t5")

VOCAB = 53


def t5_norm_in_input_dtype(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


@pytest.fixture
def float64_reference(monkeypatch):
    monkeypatch.setattr(modeling_t5.T5LayerNorm, "forward", t5_norm_in_input_dtype)


def reference(attn="eager", **overrides):
    settings = dict(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=12,
        d_ff=44,
        num_layers=2,
        num_decoder_layers=3,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        dropout_rate=0.0,
    )
    settings.update(overrides)
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(**settings))
    model = model.double().eval()
    model.config._attn_implementation = attn
    perturb(model)
    return model


VERSIONS = {
    "v1.0_relu_scaled": {},
    "v1.1_gated_gelu_unscaled": {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False},
}


def logits_of_both(hf, ours):
    # sequences longer than max_distance exercise the log-spaced buckets
    src, src_mask = padded_batch(VOCAB, [26, 17, 5], seed=1)
    tgt, tgt_mask = padded_batch(VOCAB, [23, 9, 14], seed=2)
    with torch.no_grad():
        expected = hf(
            input_ids=src,
            attention_mask=src_mask.long(),
            decoder_input_ids=tgt,
            decoder_attention_mask=tgt_mask.long(),
        ).logits
        context, context_mask = ours.encode(src, src_mask)
        got = ours.decoder.net(tgt, mask=tgt_mask, context=context, context_mask=context_mask)
    return got, expected, tgt_mask


@pytest.mark.parametrize("version", list(VERSIONS))
def test_logits_match_on_padded_batches(float64_reference, version):
    hf = reference(**VERSIONS[version])
    ours = from_hf_t5(hf)
    got, expected, mask = logits_of_both(hf, ours)
    report("T5", f"logits {version}", max_difference(got, expected, mask))


def test_settings_read_from_the_model():
    scaled = from_hf_t5(reference())
    unscaled = from_hf_t5(reference(**VERSIONS["v1.1_gated_gelu_unscaled"]))
    assert scaled.decoder.net.options.logits_scale == 32**-0.5
    assert unscaled.decoder.net.options.logits_scale is None
    assert scaled.encoder.token_emb is scaled.decoder.net.token_emb


def test_unsupported_settings_are_named():
    with pytest.raises(UnsupportedConfigError, match="dense_act_fn"):
        from_hf_t5(reference(feed_forward_proj="gated-gelu_fast"))
