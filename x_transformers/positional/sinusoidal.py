"""Fixed sinusoidal positions ("Attention Is All You Need", 1706.03762).

``PE(p, k) = sin(p * theta^(-k / half))`` for the first half of the features and the cosine of the
same angles for the second half (a permutation of the paper's interleaved layout, which changes
nothing for a learned model). No parameters and no maximum length.

Shape letters: n positions, d features.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def sinusoids(positions: Tensor, dim: int, theta: float = 10000.0) -> Tensor:
    """(..., n) float positions -> (..., n, dim) ``[sin(p * f), cos(p * f)]``, in the positions'
    dtype."""
    half = (dim + 1) // 2
    exponents = torch.arange(half, device=positions.device, dtype=positions.dtype) / half
    frequencies = theta**-exponents  # (half,)
    angles = positions[..., None] * frequencies  # (..., n, half)
    return torch.cat((angles.sin(), angles.cos()), dim=-1)[..., :dim]


class SinusoidalPositionalEmbedding(nn.Module):
    """Absolute sinusoidal positions for the wrappers (``sinusoidal_pos_emb=True``), scaled by
    ``dim ** -0.5`` so that their size matches token embeddings initialised with std ~0.02.

    The same interface as :class:`~x_transformers.positional.AbsolutePositionalEmbedding`, but any
    length works (the table is computed, not looked up)."""

    max_seq_len = None

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.scale = dim**-0.5

    def forward(
        self, seq_len: int, offset: int | Tensor = 0, device: torch.device | None = None
    ) -> Tensor:
        """(seq_len, dim) embeddings of positions ``offset .. offset + seq_len - 1``, float32; a
        (b, 1) tensor offset (per-row starts) gives (b, seq_len, dim)."""
        positions = torch.arange(seq_len, device=device, dtype=torch.float32) + offset
        return sinusoids(positions, self.dim) * self.scale
