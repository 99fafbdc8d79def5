"""Training wrappers, sampling, decoding with a KV cache, and Transformer-XL recurrence."""

from .autoregressive import AutoregressiveWrapper
from .continuous import ContinuousAutoregressiveWrapper
from .decode import DecodeSession, decode_step, eval_mode, left_pad_prompts
from .interface import DecodingSpec, cache_capacity
from .kv_cache import DynamicKVCache, StaticKVCache, kv_cache_blockers
from .non_autoregressive import NonAutoregressiveWrapper
from .recurrence import Memories, XLAutoregressiveWrapper
from .sampling import min_p, sample_next_token, top_k, top_p

__all__ = [
    "AutoregressiveWrapper",
    "ContinuousAutoregressiveWrapper",
    "DecodeSession",
    "DecodingSpec",
    "DynamicKVCache",
    "Memories",
    "NonAutoregressiveWrapper",
    "StaticKVCache",
    "XLAutoregressiveWrapper",
    "cache_capacity",
    "decode_step",
    "eval_mode",
    "kv_cache_blockers",
    "left_pad_prompts",
    "min_p",
    "sample_next_token",
    "top_k",
    "top_p",
]
