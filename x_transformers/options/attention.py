"""Options of one attention block (keywords with the ``attn_`` prefix, or ``cross_attn_`` for
cross-attention only). Each feature lives in its own module of :mod:`x_transformers.attention`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .spec import option


@dataclass(frozen=True)
class AttentionOptions:
    # head dimension, independent of dim / heads ("Low-Rank Bottleneck in Multi-head Attention")
    dim_head: int = option(64, "dimension of each attention head", "2002.07028")
    # dropout on the post-softmax attention weights
    dropout: float = option(0.0, "dropout on the attention weights")
    # require the fused kernel (F.scaled_dot_product_attention, FlashAttention); with a feature
    # that needs the attention matrix it raises a ValueError naming both keywords. Without it the
    # fused kernel is still used whenever it can express the active features.
    flash: bool = option(False, "require the fused SDPA / flash kernel", "2205.14135")
    # learned persistent key / values ("Augmenting Self-attention with Persistent Memory")
    num_mem_kv: int = option(0, "learned memory key/values per head", "1907.01470")
    # keep the k largest scores per query ("Explicit Sparse Transformer")
    sparse_topk: int | None = option(None, "top-k sparse attention", "1912.11637")
    # entmax-1.5 instead of softmax ("Adaptively Sparse Transformers")
    use_entmax15: bool = option(False, "entmax-1.5 attention", "1909.00015")
    # mix attention heads before and after softmax ("Talking-Heads Attention")
    talking_heads: bool = option(False, "talking heads", "2003.02436")
    # multi-query attention: one key/value head shared by all query heads
    one_kv_head: bool = option(False, "multi-query attention", "1911.02150")
    # grouped-query attention: this many key/value heads (a divisor of heads)
    kv_heads: int | None = option(None, "grouped-query attention", "2305.13245")
    # collaborative heads sharing query / key projections of width compression * heads * dim_head
    collab_heads: bool = option(False, "collaborative attention heads", "2006.16362")
    collab_compression: float = option(0.3, "collaborative heads compression", "2006.16362")
    # a GLU over the attention output ("Attention on Attention", without query concatenation)
    on_attn: bool = option(False, "attention on attention", "1908.06954")
    # gate the aggregated values by the input (AlphaFold2)
    gate_values: bool = option(False, "gated values (AlphaFold2)", None)
    # learned per-head output scale (NormFormer)
    head_scale: bool = option(False, "per-head output scale", "2110.09456")
    # cosine-similarity attention: grouped l2-normalised queries and keys times a scale
    qk_norm: bool = option(False, "l2-normalised queries and keys", "2010.04245")
    qk_norm_groups: int = option(1, "groups of the qk l2-norm", "2010.04245")
    qk_norm_scale: float = option(10.0, "(initial) scale of the qk-norm similarity", "2010.04245")
    # the QK-norm paper learns the scale (initialised at qk_norm_scale); False keeps it fixed
    qk_norm_learned_scale: bool = option(True, "learn the qk-norm scale", "2010.04245")
    qk_norm_dim_scale: bool = option(False, "QK RMSNorm learned dim scale", "2302.05442")
    # --- declared stages (x_transformers.attention.stages) -------------------------------------
    # tanh soft-capping of the scores, cap * tanh(scores / cap) (Gemma 2)
    softclamp_logits: bool = option(
        False, "tanh soft-capping of the attention logits", "2408.00118"
    )
    logit_softclamp_value: float = option(50.0, "the soft-capping value", "2408.00118")
    # sigmoid(scores + b) instead of the softmax, b = -log(training length)
    sigmoid: bool = option(False, "sigmoid attention", "2409.04431")
    sigmoid_bias: float = option(-math.log(1024), "sigmoid attention bias, -log(n)", "2409.04431")
    # the Laplace function of the scores instead of the softmax (Mega)
    laplace: bool = option(False, "Laplace attention", "2209.10655")
    # -||q - k||^2 * scale instead of q.k * scale (a Lipschitz self-attention)
    l2_distance: bool = option(False, "negative squared l2-distance scores", "2006.04710")
    # per-head RMSNorm with learned gains on the queries and keys / on the values
    qk_rmsnorm: bool = option(False, "per-head RMSNorm of queries and keys", "2302.05442")
    value_rmsnorm: bool = option(False, "per-head RMSNorm of the values", "2302.05442")
    # a zero key / value in front of the keys, so a head can attend to nothing
    add_zero_kv: bool = option(False, "a zero key/value to attend to nothing", "2306.12929")
    # one learned sigmoid gate per head on its output (gated attention)
    gate_value_heads: bool = option(False, "per-head output gates", "2306.12929")
    # --- projections and the block output -----------------------------------------------------
    qkv_bias: bool = option(False, "bias on the query, key and value projections")
    out_bias: bool = option(False, "bias on the output projection")
    # dropout on the block's output, before the residual addition
    sublayer_dropout: float = option(0.0, "dropout on the attention branch output")
    # a fixed multiplier of q.k instead of dim_head ** -0.5 (T5 uses 1.0: its init absorbs it)
    scale: float | None = option(None, "fixed attention scale (default dim_head ** -0.5)")

    def __post_init__(self):
        if self.scale is not None and not self.scale > 0:
            raise ValueError(f"'attn_scale' must be > 0, got {self.scale}")
        if self.scale is not None and self.qk_norm:
            raise ValueError(
                "'attn_scale' and 'attn_qk_norm' cannot be combined: qk-norm sets its own scale"
            )
