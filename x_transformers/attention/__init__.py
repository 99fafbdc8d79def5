"""Attention: the kernel (:mod:`.attend`), the multi-head module (:mod:`.attention`), masks, and
one module per variant (:mod:`.heads`, :mod:`.qk_norm`, :mod:`.memory_kv`, :mod:`.sparse_topk`,
:mod:`.entmax`, :mod:`.talking_heads`, :mod:`.output_gates`, ...), each a declared stage
(:mod:`.stages`) built by :mod:`.builder`."""

from .attend import Attend, AttentionIntermediates
from .attention import Attention
from .entmax import entmax15
from .projections import AttentionProjections
from .stages import AttentionStage, ForwardState, StageList

__all__ = [
    "Attend",
    "Attention",
    "AttentionIntermediates",
    "AttentionProjections",
    "AttentionStage",
    "ForwardState",
    "StageList",
    "entmax15",
]
