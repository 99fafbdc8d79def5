"""GPT-2 ("Language Models are Unsupervised Multitask Learners", Radford et al. 2019) from and to
``transformers.GPT2LMHeadModel``.

GPT-2 is a pre-norm decoder with learned absolute positions, biases on every projection, a
tanh-approximated gelu feedforward, LayerNorms with ``layer_norm_epsilon`` and, by default,
logits tied to the token embedding. Its ``Conv1D`` layers store weights as (in, out), so every
matrix is transposed on the way in and out.

    model = from_hf_gpt2(GPT2LMHeadModel.from_pretrained("gpt2"))
    hf = to_hf_gpt2(model)          # a GPT2LMHeadModel with the same weights
"""

from __future__ import annotations

import torch

from ..layers import Decoder
from ..wrappers.token import TransformerWrapper
from .families import (
    HF_ACTIVATIONS,
    check_same_model,
    copy_into,
    projections,
    reference_dtype,
    refuse,
    require,
    units,
)

FAMILY = "GPT-2"
ACTIVATIONS = HF_ACTIVATIONS


def gpt2_keywords(config) -> tuple[dict, dict]:
    """(Decoder keywords, TransformerWrapper keywords) of a ``GPT2Config``; an
    :class:`UnsupportedConfigError` names any setting we cannot express."""
    require(FAMILY, config, "add_cross_attention", (False, None), "no cross-attention in GPT-2")
    require(
        FAMILY,
        config,
        "scale_attn_by_inverse_layer_idx",
        (False, None),
        "a different attention scale per layer",
    )
    if config.activation_function not in ACTIVATIONS:
        refuse(FAMILY, "activation_function", config.activation_function, "no such ff_activation")
    dim, heads = config.n_embd, config.n_head
    if dim % heads:
        refuse(FAMILY, "n_head", heads, f"does not divide n_embd={dim}")
    layers = dict(
        dim=dim,
        depth=config.n_layer,
        heads=heads,
        attn_dim_head=dim // heads,
        attn_qkv_bias=True,
        attn_out_bias=True,
        ff_activation=ACTIVATIONS[config.activation_function],
        ff_inner_dim=config.n_inner or 4 * dim,
        norm_eps=config.layer_norm_epsilon,
    )
    if not config.scale_attn_weights:
        layers["attn_scale"] = 1.0
    wrapper = dict(
        num_tokens=config.vocab_size,
        max_seq_len=config.n_positions,
        tie_embedding=bool(config.tie_word_embeddings),
    )
    return layers, wrapper


def from_hf_gpt2(hf_model) -> TransformerWrapper:
    """A ``TransformerWrapper`` computing what ``hf_model`` (a ``GPT2LMHeadModel``) computes, in
    its dtype and eval mode."""
    layers, wrapper = gpt2_keywords(hf_model.config)
    model = TransformerWrapper(attn_layers=Decoder(**layers), **wrapper)
    model = model.to(reference_dtype(hf_model)).eval()
    _copy_weights(model, hf_model, to_ours=True)
    return model


def to_hf_gpt2(model: TransformerWrapper):
    """A ``GPT2LMHeadModel`` with this model's weights. The model must be exactly what a
    ``GPT2Config`` describes; anything else raises an :class:`UnsupportedConfigError`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    stack = model.attn_layers
    c = stack.config
    attention = c.attention
    config = GPT2Config(
        vocab_size=model.num_tokens,
        n_positions=model.max_seq_len,
        n_embd=c.dim,
        n_layer=c.depth,
        n_head=c.heads,
        n_inner=c.feedforward.inner_dim or int(c.dim * c.feedforward.mult),
        activation_function=_hf_activation(c.feedforward.activation_name),
        layer_norm_epsilon=1e-5 if c.blocks.norm_eps is None else c.blocks.norm_eps,
        scale_attn_weights=attention.scale is None,
        tie_word_embeddings=model.options.tie_embedding,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    _check_expressible(model, config)
    hf_model = GPT2LMHeadModel(config).to(reference_dtype(model)).eval()
    _copy_weights(model, hf_model, to_ours=False)
    return hf_model


def _hf_activation(name: str) -> str:
    return {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu"}.get(name, name)


def _check_expressible(model: TransformerWrapper, config) -> None:
    """Our model must be the one the GPT-2 config would build."""
    layers, wrapper = gpt2_keywords(config)
    with torch.device("meta"):
        expected = TransformerWrapper(attn_layers=Decoder(**layers), **wrapper)
    check_same_model(FAMILY, model, expected)


def _copy_weights(model: TransformerWrapper, hf_model, to_ours: bool) -> None:
    """Copy every tensor between the two models, in the direction ``to_ours``."""
    gpt = hf_model.transformer
    stack = model.attn_layers
    pairs = [(model.token_emb.weight, gpt.wte.weight, "wte")]
    pairs.append((model.stem.pos_emb.emb.weight, gpt.wpe.weight, "wpe"))
    blocks = list(units(stack))
    if len(blocks) != len(gpt.h):
        raise ValueError(f"{len(blocks)} layers here, {len(gpt.h)} in the reference")
    for index, ((attention, _, feedforward), layer) in enumerate(zip(blocks, gpt.h)):
        pairs += _layer_pairs(attention, feedforward, layer, f"h.{index}")
    pairs += _norm_pairs(stack.final_norm, gpt.ln_f, "ln_f")
    if model.to_logits is not None:
        pairs.append((model.to_logits.weight, hf_model.lm_head.weight, "lm_head"))
    for ours, theirs, what in pairs:
        if to_ours:
            copy_into(ours, theirs, what)
        else:
            copy_into(theirs, ours, what)


def _norm_pairs(ours, theirs, what: str) -> list:
    if theirs.eps != ours.eps:
        raise ValueError(f"{what}: epsilon {ours.eps} here, {theirs.eps} in the reference")
    return [
        (ours.weight, theirs.weight, f"{what}.weight"),
        (ours.bias, theirs.bias, f"{what}.bias"),
    ]


def _layer_pairs(attention, feedforward, layer, what: str) -> list:
    """(our tensor, reference tensor) pairs of one layer; Conv1D weights are (in, out), so the
    reference side is a transposed (writable) view."""
    dim = layer.attn.c_attn.weight.shape[0]
    q_w, k_w, v_w = layer.attn.c_attn.weight.t().split(dim)  # (3d, d) -> 3 x (d, d)
    q_b, k_b, v_b = layer.attn.c_attn.bias.split(dim)
    roles = projections(attention)
    pairs = [
        (roles["q"][0], q_w, f"{what}.attn.q.weight"),
        (roles["k"][0], k_w, f"{what}.attn.k.weight"),
        (roles["v"][0], v_w, f"{what}.attn.v.weight"),
        (roles["q"][1], q_b, f"{what}.attn.q.bias"),
        (roles["k"][1], k_b, f"{what}.attn.k.bias"),
        (roles["v"][1], v_b, f"{what}.attn.v.bias"),
        (roles["out"][0], layer.attn.c_proj.weight.t(), f"{what}.attn.c_proj.weight"),
        (roles["out"][1], layer.attn.c_proj.bias, f"{what}.attn.c_proj.bias"),
    ]
    proj_in = feedforward.branch.proj_in[0]
    proj_out = feedforward.branch.proj_out
    pairs += [
        (proj_in.weight, layer.mlp.c_fc.weight.t(), f"{what}.mlp.c_fc.weight"),
        (proj_in.bias, layer.mlp.c_fc.bias, f"{what}.mlp.c_fc.bias"),
        (proj_out.weight, layer.mlp.c_proj.weight.t(), f"{what}.mlp.c_proj.weight"),
        (proj_out.bias, layer.mlp.c_proj.bias, f"{what}.mlp.c_proj.bias"),
    ]
    pairs += _norm_pairs(attention.pre_branch_norm, layer.ln_1, f"{what}.ln_1")
    pairs += _norm_pairs(feedforward.pre_branch_norm, layer.ln_2, f"{what}.ln_2")
    return pairs


__all__ = ["from_hf_gpt2", "gpt2_keywords", "to_hf_gpt2"]
