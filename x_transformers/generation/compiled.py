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
so a second ``generate`` call with the same shapes does not compile again.

``compile=True`` on the CPU also freezes the weights (inductor's ``freezing``): the step is
compiled with the weights as constants, which lets the GEMMs read prepacked copies (one CPU
thread, benchmark shape: about 1.27x -> 1.47x the plain-PyTorch reference); and it launches the
step's kernels from inductor's C++ wrapper instead of one Python call each. A frozen step is only
valid for the weights it was compiled with, so it is kept with their fingerprint (identity,
storage and in-place version of every parameter and buffer); after training, ``load_state_dict``
or any in-place edit, the next call compiles a step that reads the weights at every token
instead, once: the model is being trained, and later changes need no recompilation. A backend
named as a string (``compile='inductor'``) compiles as given, weights read at each step.

What cannot run compiled (a feature without KV-cache support, generation past ``max_seq_len``,
which needs a sliding window) falls back to eager decoding with a warning naming the reason.

Shape letters: b batch, v vocabulary.
"""

from __future__ import annotations

import contextlib
import itertools
import types
from collections.abc import Callable
from dataclasses import dataclass

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
_STEP_NUMBERS = itertools.count()  # names the copies of the decode step (fresh_decode_step)


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


@dataclass(frozen=True)
class CompileChoice:
    """How ``generate(compile=...)`` compiles: the ``torch.compile`` backend, and for
    ``compile=True`` on the CPU two inductor settings: the weights frozen into the step
    (``freezing``: prepacked GEMM weights) and the C++ wrapper (``cpp_wrapper``: the step's
    kernels launched from C++, not one Python call each)."""

    backend: str
    freeze_weights: bool = False
    cpp_wrapper: bool = False

    def inductor_config(self) -> dict:
        """The inductor settings to patch while the step is traced and compiled."""
        config = {"freezing": True} if self.freeze_weights else {}
        return {**config, "cpp_wrapper": True} if self.cpp_wrapper else config


def resolve_compile(compile: bool | str, device: torch.device) -> CompileChoice:
    """``compile=True`` -> inductor (weights frozen and the C++ wrapper on the CPU); a string
    names the backend, used as given."""
    require_torch("generate(compile=...)", "torch.compile has no Paddle counterpart")
    if compile is True:
        on_cpu = device.type == "cpu"
        return CompileChoice("inductor", freeze_weights=on_cpu, cpp_wrapper=on_cpu)
    if isinstance(compile, str) and compile:
        return CompileChoice(compile)
    raise TypeError(f"'compile' must be a bool or a torch.compile backend name, got {compile!r}")


def weights_fingerprint(net: nn.Module) -> tuple | None:
    """Identity, storage and in-place version of every parameter and buffer of ``net``: it
    changes when an optimizer step, ``load_state_dict``, a ``.data`` swap or any in-place edit
    touches a weight. None when a tensor keeps no version counter (one created under
    ``torch.inference_mode``): such weights cannot be frozen safely."""
    try:
        tensors = itertools.chain(net.parameters(), net.buffers())
        return tuple((id(t), t.data_ptr(), t._version) for t in tensors)
    except RuntimeError:  # "Inference tensors do not track version counter"
        return None


def fresh_decode_step(**sampling) -> Callable:
    """A copy of :func:`_decode_and_choose` with its own code object, a name of its own and
    ``sampling`` as its keyword defaults. Dynamo keeps compiled graphs on the code object of the
    function it compiles (a ``functools.partial`` would put every step's graphs on one shared
    wrapper), so steps never count against each other's recompilation limit; it keeps what it
    learnt about changing sizes (automatic dynamic shapes) by file, line and name, so a step of
    its own name is never traced dynamic because another step, or another model, had other
    sizes."""
    original = _decode_and_choose
    code = original.__code__.replace(co_name=f"{original.__name__}_{next(_STEP_NUMBERS)}")
    step = types.FunctionType(code, original.__globals__, code.co_name)
    step.__kwdefaults__ = dict(sampling)
    return step


@dataclass
class CompiledStep:
    """One compiled decode step, with the weights' fingerprint it was frozen with (None when
    the weights are read at each step) and the inductor settings it is compiled with."""

    fn: Callable
    fingerprint: tuple | None
    inductor_config: dict

    def first_call(self):
        """The context of the call that traces and compiles the step: Dynamo and inductor read
        their settings then, so the step's own are patched there."""
        if not self.inductor_config:
            return contextlib.nullcontext()
        return torch._inductor.config.patch(self.inductor_config)


class CompiledSteps:
    """The compiled decode steps of one model, by shapes and sampling settings; a step with
    frozen weights is replaced, by one that reads the weights, when their fingerprint changes."""

    def __init__(self):
        self._steps: dict[tuple, CompiledStep] = {}
        # keys whose step would not trace for every cache length: they read the whole cache
        self.whole_cache_keys: set[tuple] = set()
        # the weights changed after a step was frozen with them (the model is being trained):
        # steps read the weights from then on, so later changes need no recompilation (and
        # inductor keeps each frozen copy it compiled alive in its code cache)
        self.weights_changed = False

    def get(self, key: tuple, choice: CompileChoice, net: nn.Module, **sampling) -> CompiledStep:
        freeze = choice.freeze_weights and not self.weights_changed
        fingerprint = weights_fingerprint(net) if freeze else None
        held = self._steps.get(key)
        if held is not None and held.fingerprint not in (None, fingerprint):
            self.weights_changed, fingerprint = True, None
        if held is None or held.fingerprint != fingerprint:
            self.drop(key)  # a stale frozen step goes before the new one compiles
            config = choice.inductor_config()
            if fingerprint is None:  # changed or unversioned weights: read, never frozen
                config.pop("freezing", None)
            step = fresh_decode_step(**sampling)
            compiled = torch.compile(step, fullgraph=True, backend=choice.backend)
            self._steps[key] = held = CompiledStep(compiled, fingerprint, config)
        return held

    def drop(self, key: tuple) -> None:
        self._steps.pop(key, None)

    def __len__(self) -> int:
        return len(self._steps)


def first_compiled_step(
    steps: CompiledSteps, key: tuple, choice: CompileChoice, sampling: dict, args: tuple, inputs
) -> tuple[CompiledStep | None, Tensor]:
    """``(step, token)`` of a generation's first compiled step, which traces the step (or checks
    every guard of the one traced before).

    The cache's written length is a dynamic size, marked strictly
    (``torch._dynamo.mark_dynamic``) over the range the steps of this generation take: a graph
    that would only hold for some lengths fails to trace instead of silently specialising, and
    this key then reads the whole cache (static shapes) from now on. A cache holding fewer than
    two positions (a one-token prompt) takes this step eagerly and returns no step: Dynamo
    specialises sizes 0 and 1."""
    # torch-only (resolve_compile refused Paddle): the module itself imports under Paddle
    from torch.fx.experimental.symbolic_shapes import ConstraintViolationError

    cache = args[2]
    low, high = 2, cache.capacity - 2  # the last step reads capacity - 1 slots
    if cache.written is not None and (key in steps.whole_cache_keys or high < low):
        cache.read_all()
    if cache.written is not None and cache.written.shape[0] < low:
        return None, _decode_and_choose(*args, **sampling, **inputs)
    reads_written = cache.written is not None
    step = steps.get(key + (reads_written,), choice, args[0], **sampling)
    if reads_written:
        torch._dynamo.mark_dynamic(cache.written, 0, min=low, max=high)
    try:
        with step.first_call():
            return step, step.fn(*args, **inputs)
    except ConstraintViolationError:
        if not reads_written:
            raise
    steps.drop(key + (True,))
    steps.whole_cache_keys.add(key)
    cache.read_all()
    return first_compiled_step(steps, key, choice, sampling, args, inputs)


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
    choice = resolve_compile(compile, prompt.tokens.device)
    spec = decoding_spec(net, "generate(compile=True)")
    blocker = compile_blocker(spec, prompt.tokens.shape[1], seq_len)
    if blocker is not None:
        warn_user(f"generate(compile=True) decodes eagerly: {blocker}")
        return None
    tokens = prompt.tokens
    batch, device = tokens.shape[0], tokens.device
    capacity = cache_capacity(spec, tokens.shape[1], seq_len)
    cache = StaticKVCache(capacity, read_written_only=True)
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

    key = (batch, capacity, logits.dtype, device, choice, repr(sorted(sampling.items())))
    token = choose_next_token(logits, noise(), **sampling)
    generated, done, step = [token], None, None
    for index in range(1, seq_len):
        if eos_token is not None:
            done = token == eos_token if done is None else done | (token == eos_token)
            if index % STOP_CHECK_INTERVAL == 0 and bool(done.all()):
                break
        args = (net, token[:, None], cache, noise())
        if step is None:
            step, token = first_compiled_step(steps, key, choice, sampling, args, inputs)
        else:
            # the same model, cache and shapes as the first step, and a graph valid for every
            # length they reach: only the guards that tell compiled graphs apart run
            with unguarded_repeats():
                token = step.fn(*args, **inputs)
        generated.append(token)
    return EosStop(eos_token, pad_value).finish(torch.stack(generated, dim=1), seq_len)
