"""BERT: ``transformers.BertForMaskedLM`` and ``BertModel`` -> ``TransformerWrapper``: exact
float64 logits, hidden states and pooler output on a padded batch with token types."""

from __future__ import annotations

import pytest
import torch

from tests.parity.helpers import max_difference, padded_batch, perturb, report
from x_transformers.hub.bert import from_hf_bert
from x_transformers.hub.families import UnsupportedConfigError

transformers = pytest.importorskip("transformers")

VOCAB = 61


def tiny_config(**overrides):
    settings = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=44,
        max_position_embeddings=24,
        type_vocab_size=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    settings.update(overrides)
    return transformers.BertConfig(**settings)


def reference(cls, attn="eager", **overrides):
    torch.manual_seed(0)
    model = cls(tiny_config(**overrides)).double().eval()
    model.config._attn_implementation = attn
    perturb(model)
    return model


def inputs():
    ids, mask = padded_batch(VOCAB, [12, 9, 4])
    types = torch.randint(0, 3, ids.shape, generator=torch.Generator().manual_seed(5))
    return ids, mask, types


@pytest.mark.parametrize(
    "overrides",
    [{}, {"tie_word_embeddings": False, "hidden_act": "relu"}],
    ids=["tied_gelu", "untied_relu"],
)
def test_masked_lm_logits(overrides):
    hf = reference(transformers.BertForMaskedLM, **overrides)
    ours = from_hf_bert(hf)
    ids, mask, types = inputs()
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask.long(), token_type_ids=types).logits
        got = ours(ids, mask=mask, token_type_ids=types)
    report(
        "BERT", f"MLM logits {list(overrides) or 'default'}", max_difference(got, expected, mask)
    )


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_base_model_hidden_states_and_pooler(attn):
    hf = reference(transformers.BertModel, attn=attn)
    ours = from_hf_bert(hf)
    ids, mask, types = inputs()
    with torch.no_grad():
        out = hf(input_ids=ids, attention_mask=mask.long(), token_type_ids=types)
        hidden = ours(ids, mask=mask, token_type_ids=types)
        pooled = ours.pool(hidden)
    report("BERT", f"hidden states ({attn})", max_difference(hidden, out.last_hidden_state, mask))
    report("BERT", f"pooler ({attn})", max_difference(pooled, out.pooler_output))


def test_default_token_types_are_zero():
    hf = reference(transformers.BertModel)
    ours = from_hf_bert(hf)
    ids, mask, _ = inputs()
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        got = ours(ids, mask=mask)
    report("BERT", "hidden states, default token types", max_difference(got, expected, mask))


def test_unsupported_settings_are_named():
    with pytest.raises(UnsupportedConfigError, match="hidden_act"):
        from_hf_bert(reference(transformers.BertModel, hidden_act="gelu_fast"))
    with pytest.raises(UnsupportedConfigError, match="is_decoder"):
        from_hf_bert(reference(transformers.BertModel, is_decoder=True))
