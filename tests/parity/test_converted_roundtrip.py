"""A converted reference model is an ordinary model here: it saves and loads back with identical
outputs (the family keywords are plain constructor keywords in ``config.json``)."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tests.parity import test_bert, test_gpt2, test_t5, test_vit  # noqa: E402
from x_transformers import TransformerWrapper, ViTransformerWrapper, XTransformer  # noqa: E402
from x_transformers.hub import from_hf_bert, from_hf_gpt2, from_hf_t5, from_hf_vit  # noqa: E402

TOKENS = torch.randint(1, 50, (2, 7), generator=torch.Generator().manual_seed(0))
FAMILIES = {
    "gpt2": (lambda: from_hf_gpt2(test_gpt2.tiny_gpt2()), TransformerWrapper, lambda m: m(TOKENS)),
    "bert": (
        lambda: from_hf_bert(test_bert.reference(transformers.BertForMaskedLM)),
        TransformerWrapper,
        lambda m: m(TOKENS, token_type_ids=(TOKENS % 3)),
    ),
    "vit": (
        lambda: from_hf_vit(test_vit.reference(transformers.ViTForImageClassification)),
        ViTransformerWrapper,
        lambda m: m(test_vit.images()),
    ),
    "t5": (
        lambda: from_hf_t5(test_t5.reference()),
        XTransformer,
        lambda m: m.decoder.net(TOKENS, context=m.encode(TOKENS)[0]),
    ),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_converted_model_saves_and_loads(family, tmp_path):
    build, cls, run = FAMILIES[family]
    model = build()
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path)
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in loaded.named_parameters()]
    with torch.no_grad():
        assert torch.equal(run(model), run(loaded))
