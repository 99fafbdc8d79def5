"""Pure functions on logits: filters (top-k, top-p, min-p) and sampling.

Filters return logits of the same shape with the excluded entries set to ``-inf``; they never
remove the most likely token, so greedy decoding is unaffected by them.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..backend import seeded, sort_descending


def top_k(logits: Tensor, k: int | None = None, frac_num_tokens: float = 0.1) -> Tensor:
    """Keep the ``k`` largest logits (default: ``ceil(frac_num_tokens * vocab)``)."""
    vocab = logits.shape[-1]
    if k is None and not 0.0 < frac_num_tokens <= 1.0:
        raise ValueError(f"top_k needs 0 < frac_num_tokens <= 1, got {frac_num_tokens}")
    if k is None:
        k = max(1, math.ceil(frac_num_tokens * vocab))
    if k < 1:
        raise ValueError(f"top_k needs k >= 1, got {k}")
    k = min(k, vocab)
    kth_largest = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p(logits: Tensor, thres: float = 0.9) -> Tensor:
    """Nucleus filtering ("The Curious Case of Neural Text Degeneration", 1904.09751): keep the
    smallest set of tokens whose probabilities sum to at least ``thres``."""
    if not 0.0 < thres <= 1.0:
        raise ValueError(f"top_p needs 0 < thres <= 1, got {thres}")
    sorted_logits, sorted_indices = sort_descending(logits, dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    # drop a token when the tokens before it already reach the threshold
    before = cumulative - sorted_logits.softmax(dim=-1)
    # back in vocabulary order (the indices are a permutation: every entry is written)
    drop = torch.zeros_like(before).scatter_(-1, sorted_indices, before) >= thres
    return logits.masked_fill(drop, float("-inf"))


def min_p(logits: Tensor, min_p: float = 0.1) -> Tensor:
    """Min-p filtering (2407.01082): keep tokens whose probability is at least ``min_p`` times the
    probability of the most likely token."""
    if not 0.0 <= min_p <= 1.0:
        raise ValueError(f"min_p needs 0 <= min_p <= 1, got {min_p}")
    probs = logits.softmax(dim=-1)
    limit = probs.amax(dim=-1, keepdim=True) * min_p
    return logits.masked_fill(probs < limit, float("-inf"))


FILTERS: dict[str, Callable[..., Tensor]] = {"top_k": top_k, "top_p": top_p, "min_p": min_p}


def resolve_filter(filter_logits_fn: str | Callable[..., Tensor] | None):
    """A filter by name (``'top_k'``, ``'top_p'``, ``'min_p'``), a callable, or None (no filter)."""
    if filter_logits_fn is None or callable(filter_logits_fn):
        return filter_logits_fn
    if filter_logits_fn not in FILTERS:
        close = difflib.get_close_matches(str(filter_logits_fn), list(FILTERS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(
            f"unknown filter_logits_fn {filter_logits_fn!r}; expected one of {sorted(FILTERS)} "
            f"or a callable{hint}"
        )
    return FILTERS[filter_logits_fn]


def gumbel_noise(shape, device, generator: torch.Generator | None = None) -> Tensor:
    uniform = torch.rand(shape, device=device, **seeded(generator)).clamp(min=1e-20)
    return -torch.log((-torch.log(uniform)).clamp(min=1e-20))


def sample_next_token(
    logits: Tensor,
    temperature: float = 1.0,
    filter_logits_fn: str | Callable[..., Tensor] | None = "top_k",
    filter_kwargs: dict | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(b, v) logits -> (b,) token ids. ``temperature=0`` is greedy (argmax); otherwise the
    filtered logits are sampled with the Gumbel-max trick (no host synchronisation), with noise
    from ``generator`` when given."""
    if not temperature >= 0:  # also NaN
        raise ValueError(f"'temperature' must be a real number >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    filter_fn = resolve_filter(filter_logits_fn)
    if filter_fn is not None:
        logits = filter_fn(logits, **(filter_kwargs or {}))
    noise = gumbel_noise(logits.shape, logits.device, generator)
    return (logits.float() / temperature + noise).argmax(dim=-1)
