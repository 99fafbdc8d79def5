"""ViT: ``transformers.ViTForImageClassification`` and ``ViTModel`` -> ``ViTransformerWrapper``:
exact float64 class logits, hidden states and pooler output (images have no padding mask).

The reference's eager attention computes its softmax in float32 (``softmax(..., dtype=
torch.float32)``) even in a float64 model, so the 1e-10 comparisons use its SDPA path; the eager
path is checked against 1e-6, the bound of that float32 softmax."""

from __future__ import annotations

import pytest
import torch

from tests.parity.helpers import max_difference, perturb, report
from x_transformers.hub.families import UnsupportedConfigError
from x_transformers.hub.vit import from_hf_vit

transformers = pytest.importorskip("transformers")


def reference(cls, attn="sdpa", **overrides):
    settings = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=44,
        image_size=12,
        patch_size=4,
        num_channels=3,
        num_labels=5,
    )
    settings.update(overrides)
    torch.manual_seed(0)
    model = cls(transformers.ViTConfig(**settings)).double().eval()
    model.config._attn_implementation = attn
    perturb(model)
    return model


def images():
    generator = torch.Generator().manual_seed(2)
    return torch.randn(3, 3, 12, 12, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize(
    "overrides", [{}, {"qkv_bias": False, "hidden_act": "gelu_new"}], ids=["default", "no_qkv_bias"]
)
def test_class_logits(overrides):
    hf = reference(transformers.ViTForImageClassification, **overrides)
    ours = from_hf_vit(hf)
    with torch.no_grad():
        expected = hf(pixel_values=images()).logits
        got = ours(images())
    report("ViT", f"class logits {list(overrides) or 'default'}", max_difference(got, expected))


@pytest.mark.parametrize("attn, limit", [("sdpa", 1e-10), ("eager", 1e-6)])
def test_base_model_hidden_states_and_pooler(attn, limit):
    # eager: the reference's float32 softmax bounds the difference (1e-6), not the conversion
    hf = reference(transformers.ViTModel, attn=attn)
    ours = from_hf_vit(hf)
    with torch.no_grad():
        out = hf(pixel_values=images())
        hidden = ours(images(), return_embeddings=True)
        pooled = ours.pool(hidden)
    report("ViT", f"hidden states ({attn})", max_difference(hidden, out.last_hidden_state), limit)
    report("ViT", f"pooler ({attn})", max_difference(pooled, out.pooler_output), limit)


def test_unsupported_settings_are_named():
    with pytest.raises(UnsupportedConfigError, match="hidden_act"):
        from_hf_vit(reference(transformers.ViTModel, hidden_act="gelu_fast"))
