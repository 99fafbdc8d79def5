"""Options of the positional schemes that live inside the layer stack.

They apply to the self-attention blocks (never to cross-attention, whose queries and keys come
from different sequences) and are computed once per forward by the stack; see
:mod:`x_transformers.positional`. At most one additive score bias (T5, dynamic, ALiBi) may be on;
rotary and position-infused attention compose with any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import option


@dataclass(frozen=True)
class PositionOptions:
    # --- rotary ("RoFormer", 2104.09864) and its xPos decay ("A Length-Extrapolatable
    # Transformer", 2212.10554); rotary_xpos=True turns rotary on by itself ----------------------
    rotary_pos_emb: bool = option(False, "rotary embedding on queries and keys", "2104.09864")
    rotary_emb_dim: int | None = option(
        None, "rotated dimensions per head (partial rotary; default: the whole head)", "2104.09864"
    )
    rotary_theta: float = option(10000.0, "base of the rotary frequencies", "2104.09864")
    rotary_xpos: bool = option(
        False, "xPos decay on rotary for length extrapolation (implies rotary)", "2212.10554"
    )
    rotary_xpos_scale_base: int = option(
        512, "xPos scale base: the decay's receptive field", "2212.10554"
    )
    # --- T5 bucketed relative position bias ("Exploring the Limits of Transfer Learning") --------
    rel_pos_bias: bool = option(
        False, "T5 relative position bias shared by all layers", "1910.10683"
    )
    rel_pos_num_buckets: int = option(32, "number of T5 relative position buckets", "1910.10683")
    rel_pos_max_distance: int = option(
        128, "distance where the T5 log-spaced buckets end", "1910.10683"
    )
    rel_pos_kwargs: dict | None = option(
        None,
        "keyword arguments of the active relative bias (T5: num_buckets, max_distance; dynamic:"
        " depth, log_distance; ALiBi: num_alibi_heads)",
        "1910.10683",
    )
    # --- dynamic position bias: an MLP of the (log) distance (CrossFormer 2108.00154, SwinV2) ----
    dynamic_pos_bias: bool = option(False, "bias from an MLP of the distance", "2111.09883")
    dynamic_pos_bias_log_distance: bool = option(
        False, "feed sign(d) * log(1 + |d|) to the dynamic bias MLP (SwinV2)", "2111.09883"
    )
    # --- ALiBi ("Train Short, Test Long", 2108.12409) --------------------------------------------
    alibi_pos_bias: bool = option(
        False, "ALiBi linear bias (non-symmetric bidirectional variant in Encoder)", "2108.12409"
    )
    alibi_num_heads: int | None = option(
        None, "ALiBi on the first n heads only (default: all heads)", "2108.12409"
    )
    # --- Shortformer's position-infused attention ------------------------------------------------
    position_infused_attn: bool = option(
        False, "sinusoids added to the query / key inputs of every layer", "2012.15832"
    )
