"""Per-head RMSNorm of the projected queries and keys, and of the values.

- ``qk_rmsnorm``: "Scaling Vision Transformers to 22 Billion Parameters" (2302.05442) normalises
  queries and keys per head before the dot product, which keeps the attention logits from growing
  without bound in large models; here with RMSNorm and a learned gain per feature, separately for
  queries and keys. The usual ``dim_head ** -0.5`` scale stays.
- ``value_rmsnorm``: the same normalisation applied to the values of every head.

Both act on the new positions right after the heads are split (before rotary and the KV cache),
so cached keys are stored normalised.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..backend import rms_norm
from .stages import PROJECTED, AttentionStage


class HeadRMSNorm(nn.Module):
    """RMSNorm over the last (head) dimension with a learned gain, initialised to one."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, (x.shape[-1],), self.gain.to(x.dtype), self.eps)


class QueryKeyRMSNorm(AttentionStage):
    """RMSNorm of q (b, h, i, d) and k (b, k, j, d), each with its own gain."""

    point = PROJECTED

    def __init__(self, dim_qk: int, keyword: str = "attn_qk_rmsnorm"):
        super().__init__(keyword)
        self.query_norm, self.key_norm = HeadRMSNorm(dim_qk), HeadRMSNorm(dim_qk)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, state=None):
        return self.query_norm(q), self.key_norm(k), v


class ValueRMSNorm(AttentionStage):
    """RMSNorm of v (b, k, j, d)."""

    point = PROJECTED

    def __init__(self, dim_v: int, keyword: str = "attn_value_rmsnorm"):
        super().__init__(keyword)
        self.norm = HeadRMSNorm(dim_v)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, state=None):
        return q, k, self.norm(v)
