"""Training wrappers and sampling."""

from .autoregressive import AutoregressiveWrapper
from .continuous import ContinuousAutoregressiveWrapper
from .sampling import min_p, sample_next_token, top_k, top_p

__all__ = [
    "AutoregressiveWrapper",
    "ContinuousAutoregressiveWrapper",
    "min_p",
    "sample_next_token",
    "top_k",
    "top_p",
]
