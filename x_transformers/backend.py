"""The few spellings that differ between torch and PaddlePaddle, in one place.

The model source of ``x_transformers`` is also executed under PaddlePaddle, as
``pd_x_transformers`` (docs/paddle.md): there ``import torch`` gives Paddle's torch-compatible
namespace. Almost everything is spelled portably in the model code itself (the rules are in
docs/paddle.md, "The portable subset"); what cannot be is here, chosen once by ``PADDLE``.
Under torch every helper is the plain torch call.
"""

from __future__ import annotations

import contextlib

import torch

# True when this module runs inside pd_x_transformers (torch is Paddle's compat namespace)
PADDLE = torch.nn.Module.__module__.split(".")[0] == "paddle"

if PADDLE:
    # paddle.compat's scaled_dot_product_attention takes torch's layout and enable_gqa
    SDPA_SUPPORTS_GQA = True
else:
    # F.scaled_dot_product_attention takes enable_gqa from torch 2.5 on
    SDPA_SUPPORTS_GQA = torch.torch_version.TorchVersion(torch.__version__) >= (2, 5)

if PADDLE:
    from paddle.distributed.fleet.utils import recompute as _recompute

    def checkpoint(function, *args, use_reentrant: bool = False):
        """Activation checkpointing (Paddle's ``recompute``, RNG state preserved)."""
        return _recompute(function, *args, use_reentrant=use_reentrant)

else:
    from torch.utils.checkpoint import checkpoint  # noqa: F401


def register_load_state_dict_pre_hook(module, hook) -> None:
    """``module._register_load_state_dict_pre_hook(hook, with_module=True)`` under torch.

    Paddle's ``set_state_dict`` has no per-layer pre-hooks: a state dict in an older layout
    (e.g. split ``to_q`` + ``to_kv`` for a fused ``to_qkv``) is not converted there, and its
    names come back as missing / unexpected keys (``from_pretrained`` raises on them)."""
    if not PADDLE:
        module._register_load_state_dict_pre_hook(hook, with_module=True)


if PADDLE:
    import paddle as _paddle

    def rms_norm(x, normalized_shape, weight=None, eps=None):
        """``F.rms_norm`` (Paddle 3.3 has no CPU kernel for it): the same formula, in x's dtype."""
        dims = tuple(range(-len(normalized_shape), 0))
        eps = _paddle.finfo(x.dtype).eps if eps is None else eps
        out = x * _paddle.rsqrt(x.pow(2).mean(axis=dims, keepdim=True) + eps)
        return out if weight is None else out * weight

    def sort_descending(x, dim: int = -1):
        """(values, indices) of ``x`` sorted in descending order along ``dim``."""
        indices = _paddle.argsort(x, axis=dim, descending=True, stable=True)
        return _paddle.take_along_axis(x, indices, axis=dim), indices

else:
    from torch.nn.functional import rms_norm  # noqa: F401

    def sort_descending(x, dim: int = -1):
        """(values, indices) of ``x`` sorted in descending order along ``dim``."""
        return torch.sort(x, dim=dim, descending=True)


def saved_tensors(ctx) -> tuple:
    """The tensors an autograd function saved with ``ctx.save_for_backward``."""
    return tuple(ctx.saved_tensor()) if PADDLE else ctx.saved_tensors


def backward_gradients(non_tensor_inputs: int, *gradients) -> tuple:
    """What an autograd function's ``backward`` returns: under torch one gradient per input of
    ``apply`` (``None`` for the ``non_tensor_inputs`` leading non-tensor ones); Paddle's PyLayer
    takes gradients for its tensor inputs only."""
    return gradients if PADDLE else (None,) * non_tensor_inputs + gradients


if PADDLE:

    def rng_state(device) -> tuple:
        """The CPU RNG state, and the accelerator one of ``device`` when x lives there."""
        accelerator = _paddle.get_rng_state(str(device)) if device.type != "cpu" else None
        return _paddle.get_rng_state("cpu"), accelerator

    @contextlib.contextmanager
    def replay_rng(device, state: tuple):
        """Run with the RNG as it was in ``state``, leaving the global RNG untouched afterwards
        (Paddle has no fork_rng: the current states are saved and set back)."""
        cpu, accelerator = state
        saved = rng_state(device)
        try:
            _paddle.set_rng_state(cpu, "cpu")
            if accelerator is not None:
                _paddle.set_rng_state(accelerator, str(device))
            yield
        finally:
            _paddle.set_rng_state(saved[0], "cpu")
            if saved[1] is not None:
                _paddle.set_rng_state(saved[1], str(device))

else:

    def rng_state(device: torch.device) -> tuple:
        """The CPU RNG state, and the CUDA one of ``device`` when x lives there."""
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    @contextlib.contextmanager
    def replay_rng(device: torch.device, state: tuple):
        """Run with the RNG as it was in ``state``, leaving the global RNG untouched afterwards."""
        cpu, cuda = state
        with torch.random.fork_rng(devices=[device] if cuda is not None else []):
            torch.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state(cuda, device)
            yield


def autocast_disabled(device):
    """A context in which autocast is off (positions are computed in full precision)."""
    if PADDLE:
        return _paddle.amp.auto_cast(enable=False)
    if torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()  # nothing to switch off (the common case: no setup cost)


def seeded(generator) -> dict:
    """The ``generator=`` keyword of torch's samplers when one is given (Paddle's samplers take
    none: there a given generator is refused by the caller)."""
    return {} if generator is None else {"generator": generator}


def value_range(x) -> tuple[int, int]:
    """``(min, max)`` of ``x`` as Python ints: one ``aminmax`` reduction under torch (a host
    read on CPU), ``min`` and ``max`` under Paddle (no aminmax)."""
    low, high = (x.min(), x.max()) if PADDLE else x.aminmax()
    return int(low), int(high)


def unguarded_repeats():
    """A context in which a compiled function called again with what its previous call was
    checked with skips Dynamo's guard evaluation, only the guards that tell compiled graphs apart
    run (``torch.compiler.set_stance(skip_guard_eval_unsafe=True)``, torch >= 2.6; about 0.5 ms
    of a 10 ms compiled decoding step on one CPU thread). A no-op before torch 2.6."""
    if PADDLE or torch.torch_version.TorchVersion(torch.__version__) < (2, 6):
        return contextlib.nullcontext()
    return torch.compiler.set_stance("default", skip_guard_eval_unsafe=True)


def require_torch(feature: str, reason: str) -> None:
    """Refuse a torch-only feature under Paddle with a clear error (never a silent fallback)."""
    if PADDLE:
        raise NotImplementedError(f"{feature} is torch-only (pd_x_transformers): {reason}")


def index_copy_(tensor, dim: int, index, source):
    """``tensor.index_copy_(dim, index, source)`` (Paddle has no index_copy_: an indexed
    assignment along ``dim``, the same for unique indices)."""
    if not PADDLE:
        return tensor.index_copy_(dim, index, source)
    tensor[(slice(None),) * (dim % tensor.ndim) + (index,)] = source
    return tensor


# ------------------------------------------------------------------ weights files (the hub)


def save_safetensors(tensors: dict, path: str, metadata: dict) -> None:
    """Write ``tensors`` (name -> CPU tensor) as a safetensors file."""
    if not PADDLE:
        import safetensors.torch

        safetensors.torch.save_file(tensors, path, metadata=metadata)
        return
    import safetensors.numpy

    arrays = {}
    for name, tensor in tensors.items():
        if tensor.dtype == _paddle.bfloat16:  # numpy has no bfloat16: it would be stored as u16
            raise NotImplementedError(
                f"saving bfloat16 weights ({name}) is torch-only; cast the model to float32 first"
            )
        arrays[name] = tensor.numpy()
    safetensors.numpy.save_file(arrays, path, metadata=metadata)


class _PaddleSafetensors:
    """``safe_open(path, framework="pt")`` for Paddle: the numpy reader, tensors on ``device``."""

    def __init__(self, path: str, device: str):
        import safetensors

        self._handle = safetensors.safe_open(path, framework="np")
        self._device = device

    def __enter__(self):
        self._handle.__enter__()
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)

    def keys(self):
        return self._handle.keys()

    def get_slice(self, name: str):
        return self._handle.get_slice(name)

    def get_tensor(self, name: str):
        return _paddle.to_tensor(self._handle.get_tensor(name), place=self._device)


def open_safetensors(path: str, device):
    """A safetensors reader whose ``get_tensor`` returns this framework's tensors on ``device``."""
    if PADDLE:
        return _PaddleSafetensors(path, str(device))
    import safetensors

    return safetensors.safe_open(path, framework="pt", device=str(device))


def as_device(device):
    """``torch.device(device)``; Paddle takes the device string itself (``'cpu'``, ``'gpu:0'``)."""
    return str(device) if PADDLE else torch.device(device)


def empty_weights():
    """The context a model is built in before its weights are loaded: the meta device under
    torch (no memory); under Paddle (no meta device) the weights are allocated and initialised
    once and then overwritten."""
    return contextlib.nullcontext() if PADDLE else torch.device("meta")


def assign_state_dict(model, tensors: dict) -> None:
    """Load ``tensors`` into a model built under :func:`empty_weights` (not strict: tied aliases
    are absent; the caller has checked every name and shape). Under torch the tensors are
    assigned (the model takes their dtype); under Paddle the model is first cast to their
    floating dtype and they are copied in."""
    if not PADDLE:
        model.load_state_dict(tensors, strict=False, assign=True)
        return
    floating = {t.dtype for t in tensors.values() if t.is_floating_point()}
    if len(floating) > 1:
        raise NotImplementedError(f"weights of mixed floating dtypes {sorted(map(str, floating))}")
    if floating:
        model.to(dtype=floating.pop())
    missing, unexpected = model.set_state_dict(tensors)
    if unexpected:
        raise ValueError(f"unexpected tensors {unexpected}")
