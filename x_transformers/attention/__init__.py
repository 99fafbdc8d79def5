"""Attention: the kernel (:mod:`.attend`), the multi-head module (:mod:`.attention`), masks, and
one module per variant (:mod:`.heads`, :mod:`.qk_norm`, :mod:`.memory_kv`, :mod:`.sparse_topk`,
:mod:`.entmax`, :mod:`.talking_heads`, :mod:`.output_gates`)."""

from .attend import Attend, AttentionIntermediates
from .attention import Attention
from .entmax import entmax15

__all__ = ["Attend", "Attention", "AttentionIntermediates", "entmax15"]
