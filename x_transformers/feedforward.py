"""Position-wise feedforward ("Attention Is All You Need", 1706.03762)."""

from __future__ import annotations

from torch import Tensor, nn

from .options import FeedForwardOptions


class FeedForward(nn.Module):
    """``Linear(dim, mult * dim) -> activation -> dropout -> Linear(mult * dim, dim_out)``."""

    def __init__(self, dim: int, options: FeedForwardOptions, dim_out: int | None = None):
        super().__init__()
        if options.mult <= 0:
            raise ValueError(f"'ff_mult' must be > 0, got {options.mult}")
        hidden = int(dim * options.mult)
        self.net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(options.dropout),
            nn.Linear(hidden, dim_out or dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
