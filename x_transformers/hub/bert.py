"""BERT ("BERT: Pre-training of Deep Bidirectional Transformers", 1810.04805) from
``transformers.BertModel`` and ``transformers.BertForMaskedLM``.

BERT is a post-norm encoder: token + position + token-type embeddings summed, a LayerNorm
(``layer_norm_eps``, 1e-12), then blocks ``LayerNorm(x + branch(x))``. ``BertModel`` ends with
the pooler (dense + tanh on the first token: ``model.pool(hidden)``); ``BertForMaskedLM`` with
the prediction head: dense -> activation -> LayerNorm -> logits through the (tied) word
embedding plus a bias.

    model = from_hf_bert(BertForMaskedLM.from_pretrained(path))   # logits
    model = from_hf_bert(BertModel.from_pretrained(path))         # hidden states (+ pool)
"""

from __future__ import annotations

from ..layers import Encoder
from ..wrappers.token import TransformerWrapper
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

FAMILY = "BERT"


def bert_keywords(config, *, masked_lm: bool, pooler: bool) -> tuple[dict, dict]:
    """(Encoder keywords, TransformerWrapper keywords) of a ``BertConfig``."""
    require(FAMILY, config, "is_decoder", (False, None), "only the bidirectional encoder")
    require(FAMILY, config, "add_cross_attention", (False, None), "no cross-attention")
    require(
        FAMILY,
        config,
        "position_embedding_type",
        ("absolute", None),
        "only learned absolute positions",
    )
    if config.hidden_act not in HF_ACTIVATIONS:
        refuse(FAMILY, "hidden_act", config.hidden_act, "no such ff_activation")
    activation = HF_ACTIVATIONS[config.hidden_act]
    dim, heads = config.hidden_size, config.num_attention_heads
    if dim % heads:
        refuse(FAMILY, "num_attention_heads", heads, f"does not divide hidden_size={dim}")
    layers = dict(
        dim=dim,
        depth=config.num_hidden_layers,
        heads=heads,
        attn_dim_head=dim // heads,
        attn_qkv_bias=True,
        attn_out_bias=True,
        ff_activation=activation,
        ff_inner_dim=config.intermediate_size,
        pre_norm=False,
        norm_eps=config.layer_norm_eps,
    )
    wrapper = dict(
        num_tokens=config.vocab_size,
        max_seq_len=config.max_position_embeddings,
        num_token_types=config.type_vocab_size,
        post_emb_norm=True,
        emb_norm_eps=config.layer_norm_eps,
        pooler=pooler,
    )
    if masked_lm:
        wrapper.update(
            tie_embedding=bool(config.tie_word_embeddings),
            logits_transform=activation,
            logits_bias=True,
        )
    else:
        wrapper["return_only_embed"] = True
    return layers, wrapper


def from_hf_bert(hf_model) -> TransformerWrapper:
    """A ``TransformerWrapper`` of a ``BertForMaskedLM`` (logits) or a ``BertModel`` (final
    hidden states; ``model.pool(hidden)`` when the reference has a pooler), in its dtype and
    eval mode. Pass ``token_type_ids=`` to the forward as to the reference."""
    masked_lm = hasattr(hf_model, "cls")
    bert = hf_model.bert if masked_lm else hf_model
    if not masked_lm and not hasattr(hf_model, "embeddings"):
        raise TypeError(f"expected BertModel or BertForMaskedLM, got {type(hf_model).__name__}")
    pooler = getattr(bert, "pooler", None)
    layers, wrapper = bert_keywords(hf_model.config, masked_lm=masked_lm, pooler=pooler is not None)
    model = TransformerWrapper(attn_layers=Encoder(**layers), **wrapper)
    model = model.to(reference_dtype(hf_model)).eval()
    embeddings = bert.embeddings
    copy_into(model.token_emb.weight, embeddings.word_embeddings.weight, "word_embeddings")
    copy_into(model.stem.pos_emb.emb.weight, embeddings.position_embeddings.weight, "positions")
    copy_into(model.token_type_emb.weight, embeddings.token_type_embeddings.weight, "token_types")
    copy_norm(model.stem.post_emb_norm, embeddings.LayerNorm, "embeddings.LayerNorm")
    _copy_layers(model, bert.encoder.layer)
    if pooler is not None:
        copy_linear(model.pooler.dense, pooler.dense.weight, pooler.dense.bias, "pooler.dense")
    if masked_lm:
        _copy_head(model, hf_model.cls.predictions)
    return model


def _copy_layers(model: TransformerWrapper, hf_layers) -> None:
    blocks = list(units(model.attn_layers))
    if len(blocks) != len(hf_layers):
        raise ValueError(f"{len(blocks)} layers here, {len(hf_layers)} in the reference")
    for index, ((attention, _, feedforward), layer) in enumerate(zip(blocks, hf_layers)):
        what = f"encoder.layer.{index}"
        self_attention = layer.attention.self
        for role, linear in (
            ("q", self_attention.query),
            ("k", self_attention.key),
            ("v", self_attention.value),
            ("out", layer.attention.output.dense),
        ):
            set_projection(attention, role, linear.weight, linear.bias, what)
        copy_norm(attention.post_residual_norm, layer.attention.output.LayerNorm, f"{what}.ln1")
        proj_in = feedforward.branch.proj_in[0]
        dense_in, dense_out = layer.intermediate.dense, layer.output.dense
        copy_linear(proj_in, dense_in.weight, dense_in.bias, f"{what}.intermediate")
        copy_linear(feedforward.branch.proj_out, dense_out.weight, dense_out.bias, f"{what}.out")
        copy_norm(feedforward.post_residual_norm, layer.output.LayerNorm, f"{what}.ln2")


def _copy_head(model: TransformerWrapper, predictions) -> None:
    transform = model.logits_transform
    dense = predictions.transform.dense
    copy_linear(transform.dense, dense.weight, dense.bias, "predictions.transform.dense")
    copy_norm(transform.norm, predictions.transform.LayerNorm, "predictions.transform.norm")
    if model.to_logits is not None:
        copy_into(model.to_logits.weight, predictions.decoder.weight, "predictions.decoder")
    # the forward adds the decoder's bias (tied to predictions.bias only with tied embeddings)
    bias = predictions.decoder.bias
    copy_into(model.logits_bias, predictions.bias if bias is None else bias, "decoder.bias")


__all__ = ["bert_keywords", "from_hf_bert"]
