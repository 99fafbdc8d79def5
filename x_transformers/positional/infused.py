"""Position-infused attention (Shortformer, 2012.15832).

Fixed sinusoids of the model width are added to the *inputs* of the query and key projections of
every self-attention layer, and never to the values, so the hidden states themselves carry no
absolute position (Shortformer relies on this to reuse cached states at new positions). There are
no parameters and no maximum length.

Shape letters: b batch, i queries, j keys, d model width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .sinusoidal import sinusoids
from .span import PositionSpan


@dataclass(frozen=True)
class Infusion:
    """Sinusoids at the query positions (i, d) of a span and at the positions of the keys
    projected in this call (n, d), as the span declares them; (b, i, d) and (b, n, d) when the
    span has a row offset (left-padded rows)."""

    query: Tensor
    key: Tensor

    def infuse(self, q_input: Tensor, k_input: Tensor) -> tuple[Tensor, Tensor]:
        """Add positions to q_input (b, i, d) and k_input (b, n, d)."""
        if k_input.shape[-2] != self.key.shape[-2]:
            raise ValueError(
                f"{k_input.shape[-2]} key inputs, but the position span declares "
                f"{self.key.shape[-2]} keys projected in this call"
            )
        return q_input + self.query.to(q_input.dtype), k_input + self.key.to(k_input.dtype)


class PositionInfusion(nn.Module):
    """Sinusoids of width ``dim`` for the queries and keys of a span."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, span: PositionSpan, device: torch.device, dtype: torch.dtype) -> Infusion:
        return Infusion(
            query=sinusoids(span.query_positions(device, dtype), self.dim),
            key=sinusoids(span.new_key_positions(device, dtype), self.dim),
        )

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
