"""Old import path for :class:`AutoregressiveWrapper`."""

from .generation.autoregressive import AutoregressiveWrapper  # noqa: F401
