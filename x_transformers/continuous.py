"""Old import path for the continuous wrappers."""

from .generation.continuous import ContinuousAutoregressiveWrapper  # noqa: F401
from .wrappers.continuous import ContinuousTransformerWrapper  # noqa: F401
