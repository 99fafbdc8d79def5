"""Old import path for :class:`XLAutoregressiveWrapper` (Transformer-XL training, 1901.02860)."""

from .generation.recurrence import XLAutoregressiveWrapper  # noqa: F401
