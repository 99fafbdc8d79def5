"""ViT ("An Image is Worth 16x16 Words", 2010.11929) from ``transformers.ViTModel`` and
``transformers.ViTForImageClassification``.

The original ViT: a patch projection (a stride-``patch_size`` convolution, i.e. a linear map of
each flattened patch) without norms, a class token, learned positions for the class token and
every patch, a pre-norm encoder with biases everywhere and LayerNorms of ``layer_norm_eps``
(1e-12), a final LayerNorm; the classifier reads the class token, the pooler (``ViTModel``) is
dense + tanh on it. Our patches are flattened as ``(p1 p2 c)``, so the convolution weight
``(d, c, p1, p2)`` is permuted to ``(d, p1, p2, c)``.

    vit = from_hf_vit(ViTForImageClassification.from_pretrained(path))
"""

from __future__ import annotations

from ..layers import Encoder
from ..wrappers.vit import ViTransformerWrapper
from .families import (
    HF_ACTIVATIONS,
    copy_into,
    copy_linear,
    copy_norm,
    reference_dtype,
    refuse,
    require,
    set_projection,
    units,
)

FAMILY = "ViT"


def vit_keywords(config, *, num_classes: int | None, pooler: bool) -> tuple[dict, dict]:
    """(Encoder keywords, ViTransformerWrapper keywords) of a ``ViTConfig``."""
    if config.hidden_act not in HF_ACTIVATIONS:
        refuse(FAMILY, "hidden_act", config.hidden_act, "no such ff_activation")
    require(FAMILY, config, "pooler_act", ("tanh", None), "the pooler is dense + tanh")
    dim, heads = config.hidden_size, config.num_attention_heads
    if pooler and getattr(config, "pooler_output_size", None) not in (None, dim):
        refuse(FAMILY, "pooler_output_size", config.pooler_output_size, f"must be {dim}")
    if dim % heads:
        refuse(FAMILY, "num_attention_heads", heads, f"does not divide hidden_size={dim}")
    layers = dict(
        dim=dim,
        depth=config.num_hidden_layers,
        heads=heads,
        attn_dim_head=dim // heads,
        attn_qkv_bias=bool(config.qkv_bias),
        attn_out_bias=True,
        ff_activation=HF_ACTIVATIONS[config.hidden_act],
        ff_inner_dim=config.intermediate_size,
        norm_eps=config.layer_norm_eps,
    )
    wrapper = dict(
        image_size=config.image_size,
        patch_size=config.patch_size,
        channels=config.num_channels,
        num_classes=num_classes,
        cls_token=True,
        pool="cls",
        patch_norms=False,
        pooler=pooler,
    )
    return layers, wrapper


def from_hf_vit(hf_model) -> ViTransformerWrapper:
    """A ``ViTransformerWrapper`` of a ``ViTForImageClassification`` (class logits) or a
    ``ViTModel`` (final hidden states, class token first; ``vit.pool(hidden)`` with a pooler),
    in its dtype and eval mode."""
    classifier = getattr(hf_model, "classifier", None)
    vit = hf_model.vit if classifier is not None else hf_model
    if classifier is not None and not hasattr(classifier, "weight"):
        refuse(FAMILY, "classifier", type(classifier).__name__, "num_labels must be >= 1")
    num_classes = None if classifier is None else classifier.out_features
    pooler = getattr(vit, "pooler", None)
    layers, wrapper = vit_keywords(
        hf_model.config, num_classes=num_classes, pooler=pooler is not None
    )
    model = ViTransformerWrapper(attn_layers=Encoder(**layers), **wrapper)
    model = model.to(reference_dtype(hf_model)).eval()
    embeddings = vit.embeddings
    conv = embeddings.patch_embeddings.projection
    weight = conv.weight.permute(0, 2, 3, 1).flatten(1)  # (d, c, p1, p2) -> (d, (p1 p2 c))
    copy_linear(model.patch_to_embedding[0], weight, conv.bias, "patch_embeddings")
    copy_into(model.cls_token, embeddings.cls_token, "cls_token")
    copy_into(model.pos_embedding, embeddings.position_embeddings[0], "position_embeddings")
    _copy_layers(model, vit.layers if hasattr(vit, "layers") else vit.encoder.layer)
    copy_norm(model.attn_layers.final_norm, vit.layernorm, "layernorm")
    if pooler is not None:
        copy_linear(model.pooler.dense, pooler.dense.weight, pooler.dense.bias, "pooler.dense")
    if classifier is not None:
        copy_linear(model.mlp_head, classifier.weight, classifier.bias, "classifier")
    return model


def _copy_layers(model: ViTransformerWrapper, hf_layers) -> None:
    blocks = list(units(model.attn_layers))
    if len(blocks) != len(hf_layers):
        raise ValueError(f"{len(blocks)} layers here, {len(hf_layers)} in the reference")
    for index, ((attention, _, feedforward), layer) in enumerate(zip(blocks, hf_layers)):
        what = f"layers.{index}"
        attn = layer.attention
        for role, linear in (
            ("q", attn.q_proj),
            ("k", attn.k_proj),
            ("v", attn.v_proj),
            ("out", attn.o_proj),
        ):
            set_projection(attention, role, linear.weight, linear.bias, what)
        copy_norm(attention.pre_branch_norm, layer.layernorm_before, f"{what}.layernorm_before")
        copy_norm(feedforward.pre_branch_norm, layer.layernorm_after, f"{what}.layernorm_after")
        fc1, fc2 = layer.mlp.fc1, layer.mlp.fc2
        copy_linear(feedforward.branch.proj_in[0], fc1.weight, fc1.bias, f"{what}.mlp.fc1")
        copy_linear(feedforward.branch.proj_out, fc2.weight, fc2.bias, f"{what}.mlp.fc2")


__all__ = ["from_hf_vit", "vit_keywords"]
