"""Options of the positional schemes that live inside the layer stack."""

from __future__ import annotations

from dataclasses import dataclass

from .spec import option


@dataclass(frozen=True)
class PositionOptions:
    rotary_pos_emb: bool = option(False, "rotary embedding", "2104.09864", False)
    rotary_emb_dim: int | None = option(None, "partial rotary dimension", "2104.09864", False)
    rotary_xpos: bool = option(False, "xPos decay on rotary", "2212.10554", False)
    rotary_xpos_scale_base: int = option(512, "xPos scale base", "2212.10554", False)
    rel_pos_bias: bool = option(False, "T5 relative position bias", "1910.10683", False)
    rel_pos_num_buckets: int = option(32, "T5 buckets", "1910.10683", False)
    rel_pos_max_distance: int = option(128, "T5 max distance", "1910.10683", False)
    dynamic_pos_bias: bool = option(False, "MLP position bias", "2111.09883", False)
    dynamic_pos_bias_log_distance: bool = option(False, "log distance", "2111.09883", False)
    alibi_pos_bias: bool = option(False, "ALiBi", "2108.12409", False)
    alibi_num_heads: int | None = option(None, "ALiBi heads", "2108.12409", False)
    position_infused_attn: bool = option(False, "position-infused attention", "2012.15832", False)
