"""Masked positions never reach a product: real-valued inputs are zeroed where the key-padding
mask says "drop", and a non-finite value where it says "keep" is an error.

Why zero rather than only mask the attention: a masked key gets weight 0, but ``0 * nan`` is
``nan``, so a NaN at a padded (or, in a causal stack, a future) position would still reach every
row through ``weights @ values``. Zeroing the masked positions of the inputs keeps every key and
value finite; checking the kept positions leaves no other way for a non-finite input to get in.

The user's real-valued inputs get both (``ContinuousTransformerWrapper``,
``ContinuousAutoregressiveWrapper``): in a causal stack a NaN at an unmasked position would
otherwise reach the earlier positions too. A cross-attention context is zeroed where
``context_mask`` drops it, in the layer stack itself; a NaN at a kept context position reaches
every query by definition, so it is not an error there (and a diverging encoder still shows up
as a non-finite loss, not as an input error).

The check raises ``ValueError`` on CPU. On an accelerator it is an asynchronous device assertion
(``torch._assert_async``): no host synchronisation, the error surfaces at the next sync point.

Shape letters: b batch, n sequence, d width.
"""

from __future__ import annotations

import torch
from torch import Tensor


def zero_masked_and_check_finite(x: Tensor, mask: Tensor | None, name: str) -> Tensor:
    """x (b, n, ...) real values, mask (b, n) bool (True = keep) or None -> x with the masked
    positions set to zero; a NaN or infinity at a kept position raises. Integer inputs (token
    ids) are returned unchanged."""
    if not x.is_floating_point():
        return x
    x = zero_masked(x, mask)
    check_finite(x, name)
    return x


def zero_masked(x: Tensor, mask: Tensor | None) -> Tensor:
    """x (b, n, ...) with the positions where mask (b, n) is False set to zero (where-select, so
    a NaN there is gone, not multiplied by zero)."""
    if mask is None:
        return x
    return x.masked_fill(~mask.view(*mask.shape, *(1,) * (x.ndim - mask.ndim)), 0.0)


def check_finite(x: Tensor, name: str) -> None:
    """Raise when ``x`` holds a NaN or an infinity (masked positions already zeroed)."""
    message = (
        f"'{name}' holds a NaN or an infinity at a position the mask keeps; fix the input or "
        "mask that position (mask=False)"
    )
    finite = torch.isfinite(x).all()
    if x.device.type != "cpu" or torch.compiler.is_compiling():
        torch._assert_async(finite, message)
        return
    if not bool(finite):
        row, position = _first_non_finite(x)
        raise ValueError(f"{message}; first one at row {row}, position {position}")


def _first_non_finite(x: Tensor) -> tuple[int, int]:
    bad = ~torch.isfinite(x).flatten(2).all(-1) if x.ndim > 2 else ~torch.isfinite(x)
    row, position = bad.nonzero()[0].tolist()[:2]
    return row, position
