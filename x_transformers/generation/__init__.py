"""Training wrappers, sampling, decoding with a KV cache, and Transformer-XL recurrence."""

from .autoregressive import AutoregressiveWrapper
from .continuous import ContinuousAutoregressiveWrapper
from .decode import DecodeSession, decode_step, left_pad_prompts
from .kv_cache import DynamicKVCache, StaticKVCache, kv_cache_blockers
from .recurrence import XLAutoregressiveWrapper
from .sampling import min_p, sample_next_token, top_k, top_p

__all__ = [
    "AutoregressiveWrapper",
    "ContinuousAutoregressiveWrapper",
    "DecodeSession",
    "DynamicKVCache",
    "StaticKVCache",
    "XLAutoregressiveWrapper",
    "decode_step",
    "kv_cache_blockers",
    "left_pad_prompts",
    "min_p",
    "sample_next_token",
    "top_k",
    "top_p",
]
