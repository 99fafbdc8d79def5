"""Token shift: mix neighbouring positions for free by shifting feature chunks along the sequence
(the "time-mixing" shift of RWKV-style models).

With ``shift_tokens = s`` the features of a block's branch input are split into ``s + 1`` chunks
of (nearly) equal width; chunk ``k`` is shifted ``k`` positions from the past to the present, so
position ``t`` of chunk ``k`` holds what position ``t - k`` had (zeros before the start)::

    chunk 0:  x1 x2 x3 x4        (unshifted)
    chunk 1:  0  x1 x2 x3        (shifted by 1)
    chunk 2:  0  0  x1 x2        (shifted by 2)

The shift only ever moves information forwards in time, so a ``Decoder`` stays causal (the same
shift is used in an ``Encoder``). Padded positions (key-padding mask False) are zeroed before the
shift so their content never reaches a kept position; in a left-padded batch the wrapper places
memory tokens right before each row's first real position, so that position reads them, as it
would with the row alone. ``shift_tokens`` is an int for every block
or a tuple with one value per block of the plan (``len(plan)``: 2 * depth by default, e.g. 12
for depth 6, counting attention and feedforward blocks alike).

Shape letters: b batch, n sequence, d width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class ShiftTokens(nn.Module):
    """Shift chunk ``k`` of the features by ``k`` positions, ``k = 0 .. max_shift``."""

    # a cached decode step would need the previous ``max_shift`` inputs of this block
    supports_kv_cache = False
    kv_cache_keyword = "shift_tokens"

    def __init__(self, dim: int, max_shift: int):
        super().__init__()
        if max_shift < 1:
            raise ValueError(f"ShiftTokens needs a shift >= 1, got {max_shift}")
        if dim < max_shift + 1:
            raise ValueError(
                f"'shift_tokens'={max_shift} splits the features into {max_shift + 1} chunks, "
                f"more than dim={dim}"
            )
        self.max_shift = max_shift

    def forward(self, x: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """x (b, n, d); padding_mask (b, n), True = keep."""
        chunks = x.tensor_split(self.max_shift + 1, dim=-1)  # (s + 1) x (b, n, ~d / (s + 1))
        shifted = [chunks[0]]
        for amount, chunk in enumerate(chunks[1:], start=1):
            if padding_mask is not None:
                chunk = chunk.masked_fill(~padding_mask[..., None], 0.0)
            shifted.append(shift_right(chunk, amount))
        return torch.cat(shifted, dim=-1)

    def extra_repr(self) -> str:
        return f"max_shift={self.max_shift}"


def shift_right(x: Tensor, amount: int) -> Tensor:
    """(b, n, d) -> (b, n, d) with ``out[:, t] = x[:, t - amount]`` and zeros for ``t < amount``."""
    n = x.shape[1]
    return F.pad(x, (0, 0, amount, 0))[:, :n]  # pad the front of the sequence, keep n positions


def shifts_per_block(shift_tokens: int | tuple[int, ...], num_blocks: int) -> tuple[int, ...]:
    """One shift per block of the plan: an int applies to every block, a tuple must have exactly
    ``num_blocks`` entries."""
    if isinstance(shift_tokens, int):
        return (shift_tokens,) * num_blocks
    shifts = tuple(shift_tokens)
    if len(shifts) != num_blocks:
        raise ValueError(
            f"'shift_tokens' has {len(shifts)} values but the stack has {num_blocks} blocks "
            "(one value per attention / feedforward block of the plan); got "
            f"{shift_tokens!r}"
        )
    return shifts


def build_token_shift(dim: int, shift: int) -> ShiftTokens | None:
    """``None`` when the block does not shift (the Sublayer skips the stage)."""
    return ShiftTokens(dim, shift) if shift > 0 else None
