"""The token sampling loop shared by the generators, with its stopping rule.

::

    logits ── sample ── token ──┬── eos in every row? ── stop
                                └── session.step(token) ── logits ...

A *session* is anything with ``step(tokens (b, 1)) -> logits (b, v)``: a KV-cached or
recomputing :class:`~.decode.DecodeSession`, or the segment-by-segment session of
Transformer-XL generation. A row stops at its first ``eos_token``; what it would have generated
afterwards is replaced by ``pad_value`` and the result is padded to the requested length.

Shape letters: b batch, v vocabulary, t generated length.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from .sampling import resolve_filter, sample_next_token

Sampler = Callable[[Tensor], Tensor]


def make_sampler(
    temperature: float,
    filter_logits_fn: str | Callable[..., Tensor] | None,
    filter_kwargs: dict | None,
    generator: torch.Generator | None = None,
) -> Sampler:
    """(b, v) logits -> (b,) tokens with these settings (noise from ``generator`` when given);
    bad settings fail here, before the model runs."""
    resolve_filter(filter_logits_fn)
    check_temperature(temperature)
    return partial(
        sample_next_token,
        temperature=temperature,
        filter_logits_fn=filter_logits_fn,
        filter_kwargs=filter_kwargs,
        generator=generator,
    )


def check_temperature(temperature) -> None:
    """A real number >= 0 (0 is greedy); NaN would make every step pick token 0."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(
            f"'temperature' must be a real number >= 0, got {temperature!r} "
            f"({type(temperature).__name__})"
        )
    if math.isnan(temperature) or temperature < 0:
        raise ValueError(f"'temperature' must be a real number >= 0, got {temperature}")


def check_num_new(seq_len, name: str = "seq_len") -> int:
    """The number of positions to generate: an int >= 0 (0 gives an empty result)."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, numbers.Integral):
        raise TypeError(f"'{name}' must be an int >= 0, got {seq_len!r} ({type(seq_len).__name__})")
    if seq_len < 0:
        raise ValueError(f"'{name}' must be >= 0 (0 generates nothing), got {seq_len}")
    return int(seq_len)


def check_eos_and_pad(eos_token, pad_value, vocab: int | None) -> None:
    """With ``eos_token``, ``pad_value`` is written after it, so it must be a token id in
    [0, vocab) (``vocab`` None: not known yet, only the types are checked)."""
    if eos_token is None:
        return
    for name, value in (("eos_token", eos_token), ("pad_value", pad_value)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"'{name}' must be an int token id, got {value!r}")
        if vocab is not None and not 0 <= value < vocab:
            raise ValueError(
                f"'{name}' must be a token id in [0, {vocab}) when generating with eos_token "
                f"(it is written after eos), got {value}"
            )


def pad_after_eos(tokens: Tensor, eos_token: int, pad_value: int) -> Tensor:
    """Replace everything after the first ``eos_token`` of each row by ``pad_value``."""
    is_eos = tokens == eos_token
    after_eos = (is_eos.cumsum(dim=-1) - is_eos.long()) > 0
    return tokens.masked_fill(after_eos, pad_value)


def pad_to_length(tokens: Tensor, length: int, pad_value: int) -> Tensor:
    """(..., t) -> (..., length), filled on the right with ``pad_value``."""
    return F.pad(tokens, (0, length - tokens.shape[-1]), value=pad_value)


class EosStop:
    """Which rows have emitted ``eos_token`` (None: rows never stop)."""

    def __init__(self, eos_token: int | None, pad_value: int):
        self.eos_token, self.pad_value = eos_token, pad_value
        self.done: Tensor | None = None  # (b,)

    def update(self, tokens: Tensor) -> bool:
        """Record the newest tokens (b,); True once every row is done."""
        if self.eos_token is None:
            return False
        is_eos = tokens == self.eos_token
        self.done = is_eos if self.done is None else self.done | is_eos
        return bool(self.done.all())

    def finish(self, generated: Tensor, length: int) -> Tensor:
        """(b, t) generated tokens -> (b, length), padded after each row's eos."""
        if self.eos_token is None:
            return generated
        generated = pad_after_eos(generated, self.eos_token, self.pad_value)
        return pad_to_length(generated, length, self.pad_value)


def sample_tokens(
    session,
    logits: Tensor,
    seq_len: int,
    sample: Sampler,
    eos_token: int | None = None,
    pad_value: int = 0,
) -> Tensor:
    """Sample ``seq_len`` tokens, starting from the ``logits`` (b, v) of a prefilled
    ``session``; returns (b, seq_len). The session is stepped only while tokens are needed."""
    check_eos_and_pad(eos_token, pad_value, logits.shape[-1])
    if seq_len == 0:
        return logits.new_empty(logits.shape[0], 0, dtype=torch.long)
    stop = EosStop(eos_token, pad_value)
    generated = []
    for step in range(seq_len):
        next_token = sample(logits)  # (b,)
        generated.append(next_token)
        if stop.update(next_token):
            break
        if step + 1 < seq_len:
            logits = session.step(next_token[:, None])
    return stop.finish(torch.stack(generated, dim=1), seq_len)  # (b, t) -> (b, seq_len)
