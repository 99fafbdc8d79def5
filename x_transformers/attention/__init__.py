"""Attention: the kernel (:mod:`.attend`), the multi-head module (:mod:`.attention`), masks."""

from .attend import Attend, AttentionIntermediates
from .attention import Attention

__all__ = ["Attend", "Attention", "AttentionIntermediates"]
