"""T5's bucketed relative position bias ("Exploring the Limits of Transfer Learning with a Unified
Text-to-Text Transformer", 1910.10683).

Each head learns one scalar per bucket of the distance ``d = query_position - key_position``.
Distances below ``max_exact = buckets / 2`` get a bucket each; larger ones share log-spaced
buckets up to ``max_distance``, beyond which everything falls in the last bucket (so any length
works). A causal stack only looks back and uses every bucket for ``d >= 0``; a bidirectional one
gives half of the buckets to keys in the future. One module is shared by all layers.

Shape letters: h heads, i queries, j keys.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn

from .span import PositionSpan


def t5_relative_bucket(
    distance: Tensor, *, bidirectional: bool, num_buckets: int, max_distance: int
) -> Tensor:
    """Integer ``query - key`` distances -> bucket ids in ``[0, num_buckets)`` (T5's formula,
    with the logarithm in float32 as in the reference implementation)."""
    bucket = torch.zeros_like(distance)
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (distance < 0).long() * num_buckets  # keys in the future
        distance = distance.abs()
    else:
        distance = distance.clamp(min=0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    log_ratio = torch.log(distance.float().clamp(min=1) / max_exact) / math.log(
        max_distance / max_exact
    )
    large = max_exact + (log_ratio * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return bucket + torch.where(is_small, distance, large)


def check_t5_buckets(num_buckets: int, max_distance: int, bidirectional: bool) -> None:
    """The bucket layout needs at least one exact bucket and a max distance beyond it."""
    max_exact = (num_buckets // 2 if bidirectional else num_buckets) // 2
    if max_exact < 1 or max_distance <= max_exact:
        raise ValueError(
            f"'rel_pos_num_buckets'={num_buckets} and 'rel_pos_max_distance'={max_distance} give "
            f"{max_exact} exact bucket(s) ({'bidirectional' if bidirectional else 'causal'}); "
            "need at least 1 and a max distance larger than that"
        )


class T5RelativePositionBias(nn.Module):
    """Learned bias per (bucket, head), looked up for every (query, key) pair."""

    def __init__(self, heads: int, *, causal: bool, num_buckets: int = 32, max_distance: int = 128):
        super().__init__()
        check_t5_buckets(num_buckets, max_distance, bidirectional=not causal)
        self.causal, self.num_buckets, self.max_distance = causal, num_buckets, max_distance
        self.embedding = nn.Embedding(num_buckets, heads)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, span: PositionSpan, device: torch.device, dtype: torch.dtype) -> Tensor:
        """(h, i, j) bias in ``dtype``; (b, h, i, j) with per-row explicit positions."""
        distances, index = span.distinct_distances(device)  # (k,), (i, j) or (b, i, j)
        buckets = t5_relative_bucket(
            distances,
            bidirectional=not self.causal,
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
        )
        per_distance = self.embedding.weight.to(dtype)[buckets]  # (i + j - 1, h)
        return rearrange(per_distance[index], "... i j h -> ... h i j")
