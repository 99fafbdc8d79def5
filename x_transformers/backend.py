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


def autocast_disabled(device):
    """A context in which autocast is off (positions are computed in full precision)."""
    if PADDLE:
        return _paddle.amp.auto_cast(enable=False)
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


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
