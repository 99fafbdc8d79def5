"""The position provider: computes every positional input of the self-attention blocks once per
stack forward, from an explicit :class:`PositionSpan`.

::

    stack forward ── provider(num_queries, num_keys, offset) ──> Positions
                                                                 ├─ infusion (PIA: q/k inputs)
                                                                 ├─ rotation (rotary, xPos: q, k)
                                                                 └─ bias     (T5, dynamic, ALiBi)
    every self-attention block:  infuse -> project -> rotate -> attend(+ bias)

Cross-attention never receives positions: its queries and keys belong to different sequences
(T5 likewise has no relative bias in cross-attention).

Every scheme here is computed from explicit positions, so each supports an offset (a KV cache,
Transformer-XL memories) and a per-row offset (left-padded rows of different lengths).

Shape letters: b batch, h heads, i queries, j keys, d features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..backend import autocast_disabled
from .infused import Infusion
from .rotary import Rotation
from .span import PositionSpan


@dataclass(frozen=True)
class Positions:
    """The positional inputs shared by the self-attention blocks of one forward (None: off)."""

    span: PositionSpan
    rotation: Rotation | None = None
    bias: Tensor | None = None  # (h, i, j) or (b, h, i, j), added to the attention scores
    infusion: Infusion | None = None

    def infuse(self, q_input: Tensor, k_input: Tensor) -> tuple[Tensor, Tensor]:
        """Position-infused attention: add sinusoids to the query / key projection inputs."""
        if self.infusion is None:
            return q_input, k_input
        return self.infusion.infuse(q_input, k_input)

    def add_bias(self, bias: Tensor | None) -> Tensor | None:
        """``bias`` plus the positional score bias (either may be None)."""
        if self.bias is None or bias is None:
            return self.bias if bias is None else bias
        return bias + self.bias

    def rotate(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """Rotary: rotate q (b, h, i, d) and the keys projected in this call k (b, h, n, d), at
        the positions the span declares for them (:attr:`PositionSpan.new_key_start`)."""
        if self.rotation is None:
            return q, k
        return self.rotation.rotate(q, k)


class PositionProvider(nn.Module):
    """Holds the active schemes (each None when off) and evaluates them for a span.

    Args:
        rotary: a :class:`~x_transformers.positional.rotary.RotaryEmbedding`.
        score_bias: a module ``(span, device, dtype) -> (h, i, j)`` (T5, dynamic, ALiBi).
        infusion: a :class:`~x_transformers.positional.infused.PositionInfusion`.
    """

    def __init__(
        self,
        *,
        rotary: nn.Module | None = None,
        score_bias: nn.Module | None = None,
        infusion: nn.Module | None = None,
    ):
        super().__init__()
        self.rotary, self.score_bias, self.infusion = rotary, score_bias, infusion

    def forward(
        self,
        num_queries: int,
        num_keys: int | None = None,
        offset: int | Tensor = 0,
        key_start: int | Tensor | None = None,
        num_new_keys: int | None = None,
        row_offset: Tensor | None = None,
        positions: Tensor | None = None,
        *,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> Positions:
        """Positions for queries at ``offset + arange(num_queries)`` and keys ending with the last
        query (``num_keys`` defaults to ``offset + num_queries``, i.e. keys from position 0;
        ``key_start`` overrides where the keys begin; ``num_new_keys``: a KV cache projects keys
        for the newest positions only; ``row_offset`` (b,): every position of row b is shifted
        down by it, for left-padded rows; ``positions`` (i,) or (b, i): explicit positions of
        the queries, which are also the keys, ``pos=`` of a plain forward). ``dtype`` is the
        activations' dtype: the schemes compute in it promoted to at least float32 with autocast
        off, and the bias is returned in it."""
        span = PositionSpan.for_lengths(
            num_queries, num_keys, offset, key_start, num_new_keys, row_offset, positions
        )
        compute_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        # positions are computed in full precision even inside a bf16 / fp16 autocast region
        with autocast_disabled(device):
            bias = _evaluate(self.score_bias, span, device, compute_dtype)
            return Positions(
                span=span,
                rotation=_evaluate(self.rotary, span, device, compute_dtype),
                # the activations' dtype: float32 under autocast, bf16 only for a bf16 model
                bias=None if bias is None else bias.to(dtype),
                infusion=_evaluate(self.infusion, span, device, compute_dtype),
            )


def _evaluate(scheme: nn.Module | None, span: PositionSpan, device, dtype):
    return None if scheme is None else scheme(span, device, dtype)
