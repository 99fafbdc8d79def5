"""How many heads, and how wide: multi-head, multi-query, grouped-query and collaborative heads.

- multi-head ("Attention Is All You Need", 1706.03762): ``heads`` query, key and value heads;
- multi-query ("Fast Transformer Decoding: One Write-Head is All You Need", 1911.02150;
  ``one_kv_head``): one key/value head shared by all query heads;
- grouped-query ("GQA", 2305.13245; ``kv_heads``): ``kv_heads`` key/value heads, query head ``h``
  reads key/value head ``h // (heads // kv_heads)``, the convention of
  ``F.scaled_dot_product_attention(..., enable_gqa=True)``;
- collaborative ("Multi-Head Attention: Collaborate Instead of Concatenate", 2006.16362;
  ``collab_heads``): one query and one key projection of width ``D = collab_compression * heads *
  dim_head`` shared by all heads; head ``h`` scales the shared query by its own learned mixing
  vector ``m_h``, so ``score_h(i, j) = <q_i * m_h, k_j> / sqrt(D)``. Values stay per head.

The head dimension ``dim_head`` is independent of ``dim / heads`` ("Low-Rank Bottleneck in
Multi-head Attention Models", 2002.07028).

Shape letters: b batch, i queries, j keys, h query heads, k key/value heads, d head width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..options import AttentionOptions


@dataclass(frozen=True)
class HeadShapes:
    heads: int  # query heads
    kv_heads: int  # key / value heads (heads: multi-head, 1: multi-query, else grouped-query)
    dim_qk: int  # width of one query / key head
    dim_v: int  # width of one value head
    shared_qk: bool = False  # collaborative heads: one query / key projection for all heads

    @property
    def q_width(self) -> int:
        return (1 if self.shared_qk else self.heads) * self.dim_qk

    @property
    def k_width(self) -> int:
        return (1 if self.shared_qk else self.kv_heads) * self.dim_qk

    @property
    def v_width(self) -> int:
        return self.kv_heads * self.dim_v

    @property
    def out_width(self) -> int:
        return self.heads * self.dim_v


def resolve_head_shapes(options: AttentionOptions, heads: int, prefix: str) -> HeadShapes:
    """Check the head keywords together and return the shapes they ask for."""
    if options.dim_head < 1:
        raise ValueError(f"'{prefix}dim_head' must be >= 1, got {options.dim_head}")
    kv_heads = _kv_heads(options, heads, prefix)
    default_compression = AttentionOptions().collab_compression
    if not options.collab_heads:
        if options.collab_compression != default_compression:
            raise ValueError(
                f"'{prefix}collab_compression={options.collab_compression}' has no effect "
                f"without '{prefix}collab_heads=True'"
            )
        return HeadShapes(heads, kv_heads, options.dim_head, options.dim_head)
    if options.collab_compression <= 0:
        raise ValueError(
            f"'{prefix}collab_compression' must be > 0, got {options.collab_compression}"
        )
    dim_shared = max(1, int(options.collab_compression * heads * options.dim_head))
    return HeadShapes(heads, kv_heads, dim_shared, options.dim_head, shared_qk=True)


def _kv_heads(options: AttentionOptions, heads: int, prefix: str) -> int:
    if options.one_kv_head and options.kv_heads not in (None, 1):
        raise ValueError(
            f"'{prefix}one_kv_head=True' means one key/value head, but "
            f"'{prefix}kv_heads={options.kv_heads}'; set only one of them"
        )
    kv_heads = heads if options.kv_heads is None else options.kv_heads
    kv_heads = 1 if options.one_kv_head else kv_heads
    if kv_heads < 1 or heads % kv_heads != 0:
        raise ValueError(
            f"'{prefix}kv_heads' must be a positive divisor of heads={heads}, got {kv_heads}"
        )
    return kv_heads


def split_heads(
    q: Tensor, k: Tensor, v: Tensor, shapes: HeadShapes
) -> tuple[Tensor, Tensor, Tensor]:
    """Projected q (b, i, q_width), k (b, j, k_width), v (b, j, v_width) -> per-head views
    q (b, h|1, i, dim_qk), k (b, k|1, j, dim_qk), v (b, k, j, dim_v)."""
    q = q.unflatten(-1, (-1, shapes.dim_qk)).transpose(1, 2)  # b i (h d) -> b h i d
    k = k.unflatten(-1, (-1, shapes.dim_qk)).transpose(1, 2)  # b j (k d) -> b k j d
    v = v.unflatten(-1, (-1, shapes.dim_v)).transpose(1, 2)  # b j (k d) -> b k j d
    return q, k, v


class CollaborativeHeads(nn.Module):
    """Per-head mixing of the shared query, and the shared key broadcast to the key/value heads
    (2006.16362). The mixing vectors start as standard normal draws, as random projections."""

    def __init__(self, shapes: HeadShapes):
        super().__init__()
        self.kv_heads = shapes.kv_heads
        self.mixing = nn.Parameter(torch.randn(shapes.heads, 1, shapes.dim_qk))  # (h, 1, D)

    def forward(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """q (b, 1, i, D) -> (b, h, i, D); k (b, 1, j, D) -> (b, k, j, D) (a view)."""
        q = q * self.mixing
        k = k.expand(-1, self.kv_heads, -1, -1)
        return q, k
