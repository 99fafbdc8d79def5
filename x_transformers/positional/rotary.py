"""Rotary position embedding ("RoFormer", 2104.09864) with the optional xPos decay ("A
Length-Extrapolatable Transformer", 2212.10554).

Rotary treats feature pairs of each head as complex numbers and multiplies them by
``exp(i * p * theta_k)``, ``theta_k = base^(-2k / r)``, so that ``q_m . k_n`` depends on ``m - n``
only. Pairs are split by halves, ``(x_k, x_{k + r/2})`` (the GPT-NeoX / Llama layout); with
``rotary_emb_dim = r < dim_head`` only the first ``r`` features of each head rotate (partial
rotary) and the rest pass through.

xPos additionally scales query features by ``zeta_k^(m / scale_base)`` and key features by
``zeta_k^(-n / scale_base)``, ``zeta_k = (k / (r/2) + 0.4) / 1.4``, so that scores decay like
``zeta^((m - n) / scale_base)`` with distance. Positions count from 0 without re-centring, so
keys scaled once stay valid in a KV cache; the scale is folded into the cosines and sines, which
makes xPos free at attention time. (In fp16, keys at positions beyond ~8 * scale_base can overflow;
bf16 and fp32 have the range.)

Everything is computed in float32 at least (float64 for a float64 model), with autocast off.

Shape letters: b batch, h heads, n / i / j positions, d head features, r rotated features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .span import PositionSpan

XPOS_GAMMA = 0.4


def apply_rotation(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first ``r = cos.shape[-1]`` features of x (b, h, n, d) by cos/sin (n, r), or
    (b, n, r) with one set of positions per row; the rotation runs in the dtype of cos/sin
    (>= float32) and the result has x's dtype.

    ``sin`` is signed: the sines of the negated angles on the first half, of the angles on the
    second (what :meth:`RotaryEmbedding.angles` gives). The rotation of the pairs
    ``(x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)`` is then ``x * cos + swap(x) * sin`` with
    ``swap([x1, x2]) = [x2, x1]``, one ``roll``: two dispatches fewer per call than splitting,
    negating and concatenating the halves, on every block of every decoding step."""
    if cos.ndim == 3:  # per row: (b, n, r) -> (b, 1, n, r), broadcast over the heads
        cos, sin = cos[:, None], sin[:, None]
    rotated_dim = cos.shape[-1]
    # torch.promote_types(x.dtype, cos.dtype), cos being float32 or float64
    compute_dtype = torch.float64 if x.dtype == torch.float64 else cos.dtype
    whole = rotated_dim == x.shape[-1]
    rotated = x if whole else x[..., :rotated_dim]
    if rotated.dtype != compute_dtype:  # (no-op conversions still cost a dispatch per call)
        rotated = rotated.to(compute_dtype)
    rotated = rotated * cos + rotated.roll(rotated_dim // 2, -1) * sin
    if rotated.dtype != x.dtype:
        rotated = rotated.to(x.dtype)
    return rotated if whole else torch.cat((rotated, x[..., rotated_dim:]), dim=-1)


@dataclass(frozen=True)
class Rotation:
    """Cosines and signed sines (xPos scale folded in; the sines as :func:`apply_rotation` takes
    them) of one :class:`PositionSpan`: query-side at the
    query positions (i, r), key-side at the positions of the keys projected in this call (n, r),
    as the span declares them (:attr:`PositionSpan.new_key_start`); (b, i, r) and (b, n, r)
    when the span has a row offset (left-padded rows)."""

    query_cos: Tensor
    query_sin: Tensor
    key_cos: Tensor
    key_sin: Tensor

    def rotate(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """q (b, h, i, d) at the query positions and k (b, h, n, d) at the new-key positions. A
        decoding step's one query and one key share their position (and their tables): they
        are rotated in one call on the stacked heads, which saves the dispatches of a second
        call at the price of a copy of one position's heads."""
        if (
            q.shape[-2] == 1
            and k.shape[-2] == 1
            and self.key_cos is self.query_cos
            and self.key_sin is self.query_sin
        ):
            both = apply_rotation(torch.cat((q, k), dim=1), self.query_cos, self.query_sin)
            return both.split((q.shape[1], k.shape[1]), 1)
        return self.rotate_queries(q), self.rotate_keys(k)

    def rotate_queries(self, q: Tensor) -> Tensor:
        """q (b, h, i, d) at the span's query positions."""
        return apply_rotation(q, self.query_cos, self.query_sin)

    def rotate_keys(self, k: Tensor) -> Tensor:
        """k (b, h, n, d): the keys projected in this call, at the span's new-key positions."""
        if k.shape[-2] != self.key_cos.shape[-2]:
            raise ValueError(
                f"{k.shape[-2]} keys to rotate, but the position span declares "
                f"{self.key_cos.shape[-2]} keys projected in this call"
            )
        return apply_rotation(k, self.key_cos, self.key_sin)


class RotaryEmbedding(nn.Module):
    """Rotary frequencies for ``dim`` rotated features per head (no parameters).

    Args:
        dim: rotated features per head (even).
        theta: base of the frequencies.
        xpos_scale_base: turn on the xPos decay with this scale base (None: plain rotary).
    """

    def __init__(self, dim: int, theta: float = 10000.0, xpos_scale_base: float | None = None):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"the rotary dimension must be even and >= 2, got {dim}")
        self.dim, self.theta, self.xpos_scale_base = dim, theta, xpos_scale_base
        self._tables: dict[tuple[torch.device, torch.dtype], Rotation] = {}  # see _from_table

    def frequencies(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """(r / 2,) angular frequencies ``theta^(-2k / r)``."""
        exponents = torch.arange(0, self.dim, 2, device=device, dtype=dtype) / self.dim
        return self.theta**-exponents

    def xpos_zeta(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """(r / 2,) per-pair decay bases ``(k / (r/2) + gamma) / (1 + gamma)`` of xPos."""
        k = torch.arange(0, self.dim, 2, device=device, dtype=dtype) / self.dim
        return (k + XPOS_GAMMA) / (1 + XPOS_GAMMA)

    def angles(self, positions: Tensor) -> Tensor:
        """(..., n) float positions -> (..., n, r) angles: negated on the first half, as they are
        on the second. Their cosines are the plain ones and their sines carry the sign the first
        half of each pair takes (see :func:`apply_rotation`)."""
        frequencies = self.frequencies(positions.device, positions.dtype)
        angles = positions[..., None] * frequencies  # (..., n, r/2), elementwise: no autocast
        return torch.cat((-angles, angles), dim=-1)

    def xpos_scale(self, positions: Tensor) -> Tensor:
        """(..., n) float positions -> (..., n, r) ``zeta^(p / scale_base)``."""
        zeta = self.xpos_zeta(positions.device, positions.dtype)
        scale = zeta ** (positions[..., None] / self.xpos_scale_base)  # (..., n, r/2)
        return torch.cat((scale, scale), dim=-1)

    def forward(self, span: PositionSpan, device: torch.device, dtype: torch.dtype) -> Rotation:
        if _contiguous_from_zero(span) and not torch.compiler.is_compiling():
            return self._from_table(span, device, dtype)
        return self._computed(span, device, dtype)

    def _from_table(self, span: PositionSpan, device: torch.device, dtype: torch.dtype) -> Rotation:
        """Slices of the cosines and sines of positions 0 .. L - 1, computed once per device and
        dtype (and again, twice as long, when a span reaches past them): a decoding step then
        costs no trigonometry. Compiled graphs compute instead, where it fuses."""
        end = max(span.query_start + span.num_queries, span.new_key_start + span.new_key_count)
        table = self._tables.get((device, dtype))
        if table is None or table.query_cos.shape[0] < end:
            length = max(end, 2 * (0 if table is None else table.query_cos.shape[0]), 64)
            with torch.inference_mode(False):  # the table outlives an inference-mode forward
                table = self._computed(PositionSpan.for_lengths(length), device, dtype)
            if self.xpos_scale_base is None:  # keys rotate like queries: keep one copy
                table = Rotation(table.query_cos, table.query_sin, table.query_cos, table.query_sin)
            self._tables[(device, dtype)] = table
        query_cos = table.query_cos.narrow(0, span.query_start, span.num_queries)
        query_sin = table.query_sin.narrow(0, span.query_start, span.num_queries)
        same_keys = (span.new_key_start, span.new_key_count) == (span.query_start, span.num_queries)
        if table.key_cos is table.query_cos and same_keys:
            # keys at the query positions (a decoding step, a plain forward): the same slices
            return Rotation(query_cos, query_sin, query_cos, query_sin)
        return Rotation(
            query_cos,
            query_sin,
            table.key_cos.narrow(0, span.new_key_start, span.new_key_count),
            table.key_sin.narrow(0, span.new_key_start, span.new_key_count),
        )

    def _computed(self, span: PositionSpan, device: torch.device, dtype: torch.dtype) -> Rotation:
        query_positions = span.query_positions(device, dtype)
        key_positions = span.new_key_positions(device, dtype)
        query_angles, key_angles = self.angles(query_positions), self.angles(key_positions)
        query_cos, query_sin = query_angles.cos(), query_angles.sin()
        key_cos, key_sin = key_angles.cos(), key_angles.sin()
        if self.xpos_scale_base is None:
            return Rotation(query_cos, query_sin, key_cos, key_sin)
        query_scale = self.xpos_scale(query_positions)  # keys take the reciprocal
        key_scale = self.xpos_scale(key_positions)
        return Rotation(
            query_cos * query_scale,
            query_sin * query_scale,
            key_cos / key_scale,
            key_sin / key_scale,
        )

    def _apply(self, *args, **kwargs):  # any signature: torch's and Paddle's Layer._apply differ
        self._tables.clear()  # .to() / .double(): rebuilt on the next forward
        return super()._apply(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, theta={self.theta}, xpos_scale_base={self.xpos_scale_base}"


def _contiguous_from_zero(span: PositionSpan) -> bool:
    """Positions that are Python-int ranges from 0 up, the same for every row (no row offset,
    no explicit positions): slices of one table."""
    return (
        span.positions is None
        and span.row_offset is None
        and isinstance(span.query_start, int)
        and isinstance(span.new_key_start, int)
        and min(span.query_start, span.new_key_start) >= 0
    )
