"""Compiled decoding: ``generate(..., compile=True)``.

::

    prompt ── eager prefill on a StaticKVCache ── logits ── choose ── token
                                                                    │
    token ── compiled step: model(token, cache) -> logits -> choose ┘  (one graph, every step)

The prompt is prefilled eagerly (its length varies from call to call); every new token then runs
through one ``torch.compile(..., fullgraph=True)`` step that feeds the newest token to the model
on a static cache (static shapes; the write position is a device tensor advanced in place) and
picks the next token on the device: the argmax for greedy decoding, otherwise the Gumbel-max
trick over the filtered logits. The Gumbel noise is drawn outside the graph, from the caller's
``generator`` if given, so the compiled and eager samplers draw the same tokens for a seed. The
stopping rule (every row has emitted ``eos_token``) is checked every few steps only, so the loop
does not wait for the device after each token.

Compiled steps are kept on the model, one per (batch, capacity, dtype, device, sampling, backend),
so a second ``generate`` call with the same shapes does not compile again. What cannot run
compiled (a feature without KV-cache support, generation past ``max_seq_len``, which needs a
sliding window) falls back to eager decoding with a warning naming the reason.

Shape letters: b batch, v vocabulary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from ..backend import require_torch, unguarded_repeats
from .decode import warn_user
from .interface import DecodingSpec, cache_capacity, decoding_spec
from .kv_cache import StaticKVCache
from .loop import EosStop
from .sampling import gumbel_noise, resolve_filter

# how many tokens are generated between two checks of the stopping rule (each check waits for
# the device); a row that stopped is padded afterwards anyway
STOP_CHECK_INTERVAL = 16


def choose_next_token(
    logits: Tensor,
    noise: Tensor | None,
    temperature: float,
    filter_fn: Callable[..., Tensor] | None,
    filter_kwargs: dict,
) -> Tensor:
    """(b, v) logits -> (b,) tokens: the argmax (``temperature == 0``), or the Gumbel-max sample
    of the filtered logits with the given noise (b, v). Static shapes, no host sync."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    if filter_fn is not None:
        logits = filter_fn(logits, **filter_kwargs)
    return (logits.float() / temperature + noise).argmax(dim=-1)


def _decode_and_choose(
    net, token, cache, noise, *, temperature, filter_fn, filter_kwargs, **inputs
):
    logits = net(token, cache=cache, **inputs)[:, -1]
    return choose_next_token(logits, noise, temperature, filter_fn, filter_kwargs)


def compile_blocker(spec: DecodingSpec, prompt_length: int, num_new: int) -> str | None:
    """Why this generation cannot run compiled, or None."""
    if spec.kv_cache_blockers:
        features = ", ".join(map(repr, spec.kv_cache_blockers))
        return f"{features} cannot use the KV cache"
    if prompt_length + num_new > spec.max_seq_len:
        return (
            f"prompt ({prompt_length}) + new tokens ({num_new}) exceed max_seq_len="
            f"{spec.max_seq_len}, which needs a sliding window"
        )
    return None


class CompiledSteps:
    """The compiled decode steps of one model, by shapes and sampling settings."""

    def __init__(self):
        self._steps: dict[tuple, Callable] = {}

    def get(self, key: tuple, backend: str, **sampling) -> Callable:
        if key not in self._steps:
            step = partial(_decode_and_choose, **sampling)
            self._steps[key] = torch.compile(step, fullgraph=True, backend=backend)
        return self._steps[key]

    def __len__(self) -> int:
        return len(self._steps)


def resolve_backend(compile: bool | str) -> str:
    """``compile=True`` -> the default backend ('inductor'); a string names the backend."""
    require_torch("generate(compile=...)", "torch.compile has no Paddle counterpart")
    if compile is True:
        return "inductor"
    if isinstance(compile, str) and compile:
        return compile
    raise TypeError(f"'compile' must be a bool or a torch.compile backend name, got {compile!r}")


def generate_compiled(
    net: nn.Module,
    steps: CompiledSteps,
    prompt,
    seq_len: int,
    *,
    compile: bool | str,
    temperature: float,
    filter_logits_fn,
    filter_kwargs: dict | None,
    eos_token: int | None,
    pad_value: int,
    generator: torch.Generator | None,
    layer_inputs: dict,
) -> Tensor | None:
    """(b, seq_len) new tokens after the left-padded ``prompt`` (a ``PromptBatch``), decoded
    by compiled steps on a static cache; None, after a warning naming the reason, when this
    generation cannot run compiled (:func:`compile_blocker`)."""
    backend = resolve_backend(compile)
    spec = decoding_spec(net, "generate(compile=True)")
    blocker = compile_blocker(spec, prompt.tokens.shape[1], seq_len)
    if blocker is not None:
        warn_user(f"generate(compile=True) decodes eagerly: {blocker}")
        return None
    tokens = prompt.tokens
    batch, device = tokens.shape[0], tokens.device
    capacity = cache_capacity(spec, tokens.shape[1], seq_len)
    cache = StaticKVCache(capacity)
    inputs = dict(layer_inputs)
    if prompt.start_positions is not None:
        inputs["seq_start_pos"] = prompt.start_positions
    filter_fn = resolve_filter(filter_logits_fn) if temperature > 0 else None
    sampling = {
        "temperature": temperature,
        "filter_fn": filter_fn,
        "filter_kwargs": dict(filter_kwargs or {}),
    }
    logits = net(tokens, mask=prompt.mask, cache=cache, **inputs)[:, -1]  # eager prefill

    def noise() -> Tensor | None:
        if temperature == 0:
            return None
        return gumbel_noise(logits.shape, device, generator)

    key = (batch, capacity, logits.dtype, device, backend, repr(sorted(sampling.items())))
    step = steps.get(key, backend, **sampling)
    token = choose_next_token(logits, noise(), **sampling)
    generated, done = [token], None
    for index in range(1, seq_len):
        if eos_token is not None:
            done = token == eos_token if done is None else done | (token == eos_token)
            if index % STOP_CHECK_INTERVAL == 0 and bool(done.all()):
                break
        # the first step checks every guard of the compiled graph; the later ones get the same
        # model, cache and shapes, so only the guards that tell compiled graphs apart run
        with unguarded_repeats() if index > 1 else contextlib.nullcontext():
            token = step(net, token[:, None], cache, noise(), **inputs)
        generated.append(token)
    return EosStop(eos_token, pad_value).finish(torch.stack(generated, dim=1), seq_len)
