"""Absolute position embeddings, indexed by explicit positions."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AbsolutePositionalEmbedding(nn.Module):
    """Learned absolute positions (one vector per position up to ``max_seq_len``)."""

    def __init__(self, dim: int, max_seq_len: int):
        super().__init__()
        self.max_seq_len = max_seq_len
        self.emb = nn.Embedding(max_seq_len, dim)
        nn.init.normal_(self.emb.weight, std=0.02)

    def forward(self, seq_len: int, offset: int = 0, device: torch.device | None = None) -> Tensor:
        """(seq_len, dim) embeddings of positions ``offset .. offset + seq_len - 1``."""
        end = offset + seq_len
        if end > self.max_seq_len:
            raise ValueError(
                f"sequence of length {end} is longer than max_seq_len={self.max_seq_len} of the "
                "learned absolute positions; shorten it, raise max_seq_len, or use a relative "
                "scheme with use_abs_pos_emb=False"
            )
        positions = torch.arange(offset, end, device=device or self.emb.weight.device)
        return self.emb(positions)
