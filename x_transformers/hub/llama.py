"""Llama ("LLaMA: Open and Efficient Foundation Language Models", 2302.13971; Llama 2,
2307.09288) from and to ``transformers.LlamaForCausalLM``.

Llama is a pre-norm decoder with RMSNorm (``rms_norm_eps``), rotary positions in the rotate-half
layout with base ``rope_theta``, grouped-query attention (``num_key_value_heads``), a SwiGLU
feedforward of width ``intermediate_size`` and no biases (unless ``attention_bias`` /
``mlp_bias``). No absolute positions. Our GLU projects to ``[value; gate]``, so its weight is
``[up_proj; gate_proj]``.

    model = from_hf_llama(LlamaForCausalLM.from_pretrained(path))
    hf = to_hf_llama(model)
"""

from __future__ import annotations

import torch

from ..layers import Decoder
from ..wrappers.token import TransformerWrapper
from .families import (
    check_same_model,
    copy_into,
    projections,
    reference_dtype,
    refuse,
    require,
    units,
)

FAMILY = "Llama"


def rope_settings(config) -> float:
    """``rope_theta`` of plain rotary; scaled variants (linear, dynamic, yarn, llama3) and
    partial rotary are refused by name."""
    parameters = dict(getattr(config, "rope_parameters", None) or {})
    scaling = getattr(config, "rope_scaling", None)  # transformers < 5
    if scaling:
        parameters = {**dict(scaling), **parameters}
    rope_type = parameters.get("rope_type", parameters.get("type", "default"))
    if rope_type != "default":
        refuse(FAMILY, "rope_type", rope_type, "only plain rotary (rope_type 'default')")
    if parameters.get("partial_rotary_factor", 1.0) != 1.0:
        refuse(FAMILY, "partial_rotary_factor", parameters["partial_rotary_factor"], "")
    return float(parameters.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def llama_keywords(config) -> tuple[dict, dict]:
    """(Decoder keywords, TransformerWrapper keywords) of a ``LlamaConfig``."""
    require(FAMILY, config, "hidden_act", ("silu",), "the SwiGLU feedforward uses silu")
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    attention_bias = bool(getattr(config, "attention_bias", False))
    layers = dict(
        dim=config.hidden_size,
        depth=config.num_hidden_layers,
        heads=heads,
        attn_dim_head=head_dim,
        attn_qkv_bias=attention_bias,
        attn_out_bias=attention_bias,
        rotary_pos_emb=True,
        rotary_theta=rope_settings(config),
        use_rmsnorm=True,
        norm_eps=config.rms_norm_eps,
        ff_glu=True,
        ff_activation="silu",
        ff_inner_dim=config.intermediate_size,
        ff_no_bias=not getattr(config, "mlp_bias", False),
    )
    if kv_heads != heads:
        layers["attn_kv_heads"] = kv_heads
    wrapper = dict(
        num_tokens=config.vocab_size,
        max_seq_len=config.max_position_embeddings,
        use_abs_pos_emb=False,
        tie_embedding=bool(config.tie_word_embeddings),
    )
    return layers, wrapper


def from_hf_llama(hf_model) -> TransformerWrapper:
    """A ``TransformerWrapper`` computing what ``hf_model`` (a ``LlamaForCausalLM``) computes,
    in its dtype and eval mode."""
    layers, wrapper = llama_keywords(hf_model.config)
    model = TransformerWrapper(attn_layers=Decoder(**layers), **wrapper)
    model = model.to(reference_dtype(hf_model)).eval()
    _copy_weights(model, hf_model, to_ours=True)
    return model


def to_hf_llama(model: TransformerWrapper):
    """A ``LlamaForCausalLM`` with this model's weights; a model that Llama cannot express
    raises an :class:`UnsupportedConfigError` naming the option."""
    from transformers import LlamaConfig, LlamaForCausalLM

    c = model.attn_layers.config
    attention, feedforward = c.attention, c.feedforward
    config = LlamaConfig(
        vocab_size=model.num_tokens,
        hidden_size=c.dim,
        intermediate_size=feedforward.inner_dim or int(c.dim * feedforward.mult),
        num_hidden_layers=c.depth,
        num_attention_heads=c.heads,
        num_key_value_heads=attention.kv_heads or c.heads,
        head_dim=attention.dim_head,
        max_position_embeddings=model.max_seq_len,
        rms_norm_eps=1e-8 if c.blocks.norm_eps is None else c.blocks.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": c.positions.rotary_theta},
        attention_bias=attention.qkv_bias,
        mlp_bias=not feedforward.no_bias,
        tie_word_embeddings=model.options.tie_embedding,
    )
    layers, wrapper = llama_keywords(config)
    with torch.device("meta"):
        expected = TransformerWrapper(attn_layers=Decoder(**layers), **wrapper)
    check_same_model(FAMILY, model, expected)
    hf_model = LlamaForCausalLM(config).to(reference_dtype(model)).eval()
    _copy_weights(model, hf_model, to_ours=False)
    return hf_model


def _copy_weights(model: TransformerWrapper, hf_model, to_ours: bool) -> None:
    llama = hf_model.model
    pairs = [(model.token_emb.weight, llama.embed_tokens.weight, "embed_tokens")]
    blocks = list(units(model.attn_layers))
    if len(blocks) != len(llama.layers):
        raise ValueError(f"{len(blocks)} layers here, {len(llama.layers)} in the reference")
    for index, ((attention, _, feedforward), layer) in enumerate(zip(blocks, llama.layers)):
        pairs += _layer_pairs(attention, feedforward, layer, f"layers.{index}")
    pairs += _norm_pairs(model.attn_layers.final_norm, llama.norm, "norm")
    if model.to_logits is not None:
        pairs.append((model.to_logits.weight, hf_model.lm_head.weight, "lm_head"))
    for ours, theirs, what in pairs:
        if (ours is None) != (theirs is None):
            raise ValueError(f"{what}: present on one side only")
        if ours is None:
            continue
        if to_ours:
            copy_into(ours, theirs, what)
        else:
            copy_into(theirs, ours, what)


def _norm_pairs(ours, theirs, what: str) -> list:
    if theirs.variance_epsilon != ours.eps:
        raise ValueError(f"{what}: epsilon {ours.eps} here, {theirs.variance_epsilon} there")
    return [(ours.weight, theirs.weight, f"{what}.weight")]


def _layer_pairs(attention, feedforward, layer, what: str) -> list:
    roles = projections(attention)
    attn = layer.self_attn
    pairs = []
    for role, linear in (("q", attn.q_proj), ("k", attn.k_proj), ("v", attn.v_proj)):
        pairs.append((roles[role][0], linear.weight, f"{what}.self_attn.{role}_proj.weight"))
        pairs.append((roles[role][1], linear.bias, f"{what}.self_attn.{role}_proj.bias"))
    pairs.append((roles["out"][0], attn.o_proj.weight, f"{what}.self_attn.o_proj.weight"))
    pairs.append((roles["out"][1], attn.o_proj.bias, f"{what}.self_attn.o_proj.bias"))
    glu = feedforward.branch.proj_in.proj  # rows [value; gate] = [up_proj; gate_proj]
    hidden = glu.weight.shape[0] // 2
    mlp = layer.mlp
    up_w, gate_w = glu.weight.split(hidden)
    up_b, gate_b = (None, None) if glu.bias is None else glu.bias.split(hidden)
    pairs += [
        (up_w, mlp.up_proj.weight, f"{what}.mlp.up_proj.weight"),
        (up_b, mlp.up_proj.bias, f"{what}.mlp.up_proj.bias"),
        (gate_w, mlp.gate_proj.weight, f"{what}.mlp.gate_proj.weight"),
        (gate_b, mlp.gate_proj.bias, f"{what}.mlp.gate_proj.bias"),
        (feedforward.branch.proj_out.weight, mlp.down_proj.weight, f"{what}.mlp.down_proj.weight"),
        (feedforward.branch.proj_out.bias, mlp.down_proj.bias, f"{what}.mlp.down_proj.bias"),
    ]
    pairs += _norm_pairs(attention.pre_branch_norm, layer.input_layernorm, f"{what}.input_norm")
    pairs += _norm_pairs(
        feedforward.pre_branch_norm, layer.post_attention_layernorm, f"{what}.post_attn_norm"
    )
    return pairs


__all__ = ["from_hf_llama", "llama_keywords", "to_hf_llama"]
