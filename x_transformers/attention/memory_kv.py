"""Persistent memory: learned key/value pairs attended to by every query ("Augmenting
Self-attention with Persistent Memory", Sukhbaatar et al., 1907.01470).

``num_mem_kv`` learned keys and values per key/value head are put in front of the keys and values
computed from the input. They carry no position, are visible to every query (also in a causal
stack: the causal mask is aligned bottom-right, so keys in front of the sequence are always
visible) and are never masked by padding. Memory keys go through the same key normalisation as
the other keys when qk-norm is on, so the qk-norm bound still holds.

Shape letters: b batch, k key/value heads, m memory slots, j keys, d head width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .masks import prepend_keys


class MemoryKeyValues(nn.Module):
    """``num_mem_kv`` learned (key, value) pairs per key/value head, prepended to the keys."""

    def __init__(self, num_mem_kv: int, kv_heads: int, dim_qk: int, dim_v: int):
        super().__init__()
        self.num_mem_kv = num_mem_kv
        self.keys = nn.Parameter(torch.randn(kv_heads, num_mem_kv, dim_qk))  # (k, m, d)
        self.values = nn.Parameter(torch.randn(kv_heads, num_mem_kv, dim_v))  # (k, m, d)

    def forward(
        self,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        bias: Tensor | None,
        key_norm: nn.Module | None = None,
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """k (b, k, j, d), v (b, k, j, d) -> (b, k, m + j, d); the mask (..., j) and the additive
        bias (..., j) grow to (..., m + j) with visible, unbiased memory slots."""
        batch = k.shape[0]
        mem_k = self.keys if key_norm is None else key_norm(self.keys)
        mem_k = mem_k.to(k.dtype).expand(batch, -1, -1, -1)  # (k, m, d) -> (b, k, m, d)
        mem_v = self.values.to(v.dtype).expand(batch, -1, -1, -1)
        k = torch.cat((mem_k, k), dim=-2)
        v = torch.cat((mem_v, v), dim=-2)
        mask = prepend_keys(mask, self.num_mem_kv, True)
        bias = prepend_keys(bias, self.num_mem_kv, 0.0)
        return k, v, mask, bias
