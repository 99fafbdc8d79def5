"""T5 ("Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer",
1910.10683; v1.1's gated-gelu) from ``transformers.T5ForConditionalGeneration``.

T5 is a pre-norm encoder-decoder with RMS norms (``layer_norm_epsilon``), no biases, unscaled
attention (``attn_scale=1.0``: the initialisation absorbs ``dim_head ** -0.5``), bucketed
relative position biases learned in the first layer of each stack and shared by all its layers
(bidirectional in the encoder, causal in the decoder, none in cross-attention), a relu or gated
(tanh-)gelu feedforward, and logits through the shared embedding, the decoder output first
multiplied by ``d_model ** -0.5`` when the reference scales it. Both settings are read from the
model object: the tying from which tensors are shared, the scaling from
``config.scale_decoder_outputs`` (older ``transformers``: ``tie_word_embeddings``).

    model = from_hf_t5(T5ForConditionalGeneration.from_pretrained(path))   # an XTransformer
    context, context_mask = model.encode(src, mask)
    logits = model.decoder.net(tgt, context=context, context_mask=context_mask)
"""

from __future__ import annotations

from ..positional.t5 import T5RelativePositionBias
from ..wrappers.encoder_decoder import XTransformer
from .families import (
    HF_ACTIVATIONS,
    copy_into,
    copy_norm,
    reference_dtype,
    refuse,
    set_projection,
    units,
)

FAMILY = "T5"


def t5_layer_keywords(config) -> dict:
    """The stack keywords shared by both sides."""
    if config.dense_act_fn not in HF_ACTIVATIONS:
        refuse(FAMILY, "dense_act_fn", config.dense_act_fn, "no such ff_activation")
    keywords = dict(
        heads=config.num_heads,
        attn_dim_head=config.d_kv,
        attn_scale=1.0,
        use_rmsnorm=True,
        norm_eps=config.layer_norm_epsilon,
        rel_pos_bias=True,
        rel_pos_num_buckets=config.relative_attention_num_buckets,
        rel_pos_max_distance=config.relative_attention_max_distance,
        ff_no_bias=True,
        ff_inner_dim=config.d_ff,
        ff_activation=HF_ACTIVATIONS[config.dense_act_fn],
    )
    if config.is_gated_act:
        keywords["ff_glu"] = True
    return keywords


def decoder_output_scale(hf_model) -> float | None:
    """``d_model ** -0.5`` when the reference scales the decoder output before the logits."""
    config = hf_model.config
    scale = getattr(config, "scale_decoder_outputs", None)
    if scale is None:  # transformers < 5: the tying flag decides
        scale = bool(config.tie_word_embeddings)
    return config.d_model**-0.5 if scale else None


def from_hf_t5(hf_model, max_seq_len: int = 512) -> XTransformer:
    """An ``XTransformer`` computing what ``hf_model`` computes (``max_seq_len`` only bounds
    generation: T5's positions are relative), in its dtype and eval mode."""
    config = hf_model.config
    shared_embedding = hf_model.encoder.embed_tokens.weight is hf_model.decoder.embed_tokens.weight
    tied_logits = hf_model.lm_head.weight is hf_model.decoder.embed_tokens.weight
    layers = t5_layer_keywords(config)
    sides = {}
    for side, depth in (("enc_", config.num_layers), ("dec_", config.num_decoder_layers)):
        sides.update({side + key: value for key, value in layers.items()})
        sides.update(
            {
                f"{side}num_tokens": config.vocab_size,
                f"{side}max_seq_len": max_seq_len,
                f"{side}depth": depth,
                f"{side}use_abs_pos_emb": False,
            }
        )
    sides["dec_tie_embedding"] = tied_logits
    scale = decoder_output_scale(hf_model)
    if scale is not None:
        sides["dec_logits_scale"] = scale
    model = XTransformer(dim=config.d_model, tie_token_emb=shared_embedding, **sides)
    model = model.to(reference_dtype(hf_model)).eval()
    _copy_side(model.encoder, hf_model.encoder, "encoder")
    _copy_side(model.decoder.net, hf_model.decoder, "decoder")
    if not tied_logits:
        copy_into(model.decoder.net.to_logits.weight, hf_model.lm_head.weight, "lm_head")
    return model


def _copy_side(wrapper, stack, what: str) -> None:
    copy_into(wrapper.token_emb.weight, stack.embed_tokens.weight, f"{what}.embed_tokens")
    bias = [m for m in wrapper.attn_layers.modules() if isinstance(m, T5RelativePositionBias)]
    reference_bias = stack.block[0].layer[0].SelfAttention.relative_attention_bias
    copy_into(bias[0].embedding.weight, reference_bias.weight, f"{what}.relative_attention_bias")
    for index, block in enumerate(stack.block[1:], start=1):
        if block.layer[0].SelfAttention.has_relative_attention_bias:
            refuse(FAMILY, f"{what}.block.{index}.has_relative_attention_bias", True, "shared")
    blocks = list(units(wrapper.attn_layers))
    if len(blocks) != len(stack.block):
        raise ValueError(f"{what}: {len(blocks)} layers here, {len(stack.block)} there")
    for index, ((attention, cross, feedforward), block) in enumerate(zip(blocks, stack.block)):
        where = f"{what}.block.{index}"
        parts = list(block.layer)
        _copy_attention(attention, parts[0].SelfAttention, parts[0].layer_norm, where)
        if cross is not None:
            _copy_attention(cross, parts[1].EncDecAttention, parts[1].layer_norm, f"{where}.x")
        _copy_feedforward(feedforward, parts[-1], where)
    copy_norm(wrapper.attn_layers.final_norm, stack.final_layer_norm, f"{what}.final_layer_norm")


def _copy_attention(block, attention, norm, what: str) -> None:
    for role, linear in (("q", attention.q), ("k", attention.k), ("v", attention.v)):
        set_projection(block, role, linear.weight, None, what)
    set_projection(block, "out", attention.o.weight, None, what)
    copy_norm(block.pre_branch_norm, norm, f"{what}.layer_norm")


def _copy_feedforward(block, layer, what: str) -> None:
    dense = layer.DenseReluDense
    branch = block.branch
    if hasattr(dense, "wi_0"):  # gated: wo(act(wi_0 x) * wi_1 x); our GLU rows [value; gate]
        hidden = dense.wi_0.weight.shape[0]
        value, gate = branch.proj_in.proj.weight.split(hidden)
        copy_into(value, dense.wi_1.weight, f"{what}.wi_1")
        copy_into(gate, dense.wi_0.weight, f"{what}.wi_0")
    else:
        copy_into(branch.proj_in[0].weight, dense.wi.weight, f"{what}.wi")
    copy_into(branch.proj_out.weight, dense.wo.weight, f"{what}.wo")
    copy_norm(block.pre_branch_norm, layer.layer_norm, f"{what}.ff.layer_norm")


__all__ = ["decoder_output_scale", "from_hf_t5", "t5_layer_keywords"]
