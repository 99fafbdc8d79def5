"""Linear weights stored input-major.

A linear layer's weight is an (out, in) matrix; PyTorch stores it row by row. The library's
linear layers store the same matrix column by column instead: the (in, out) transpose is the
contiguous block of memory, and the parameter is its (out, in) view (strides ``(1, out)``), as
Paddle and JAX keep their kernels. Shape, values, state-dict entries, initialisation and
gradients are those of ``nn.Linear``; only the strides differ.

Why: a product with a few rows of input, the ``batch x 1`` tokens of a decoding step, is much
cheaper from this layout on CPU BLAS (MKL): 0.51-0.74x the time of the row-major product for
4-64 input rows on one thread (0.27-1.07x on two), and 0.93-1.03x for 1 row and for the 256-1024
rows of a training batch (torch 2.13; ``benchmarks/README.md``, where a whole training step is
unchanged). On accelerators the layout is kept as well; it is not measured there.

Weights that arrive by assignment (``load_state_dict(..., assign=True)``, ``param.data = ...``)
take the layout of what was assigned; :func:`store_input_major` restores it (``from_pretrained``
does). FSDP2's ``fully_shard`` refuses non-contiguous parameters: call :func:`store_row_major`
on the model first (the command line's ``--fsdp`` does). Under the PaddlePaddle edition nothing
changes: Paddle's own linear weights are (in, out) already.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .backend import PADDLE


def linear(dim_in: int, dim_out: int, bias: bool = True) -> nn.Linear:
    """``nn.Linear(dim_in, dim_out, bias)`` with its weight stored input-major (initialised
    exactly like ``nn.Linear``'s, from the same random draws)."""
    layer = nn.Linear(dim_in, dim_out, bias=bias)
    _relayout(layer.weight)
    return layer


def is_input_major(weight: Tensor) -> bool:
    """Whether the (out, in) ``weight`` is the view of a contiguous (in, out) matrix."""
    return weight.dim() == 2 and weight.t().is_contiguous()


def linear_weights(module: nn.Module) -> dict[str, Tensor]:
    """``{module name: weight}`` of the ``nn.Linear`` layers in ``module`` whose weight no other
    kind of module holds (a logits layer tied to the token embedding, whose rows are gathered,
    is left out): the weights this module stores input-major."""
    held_elsewhere = {
        id(param)
        for sub in module.modules()
        if not isinstance(sub, nn.Linear)
        for param in sub.parameters(recurse=False)
    }
    return {
        name: sub.weight
        for name, sub in module.named_modules()
        if isinstance(sub, nn.Linear) and id(sub.weight) not in held_elsewhere
    }


def store_input_major(module: nn.Module) -> nn.Module:
    """Store the weights of :func:`linear_weights` input-major, in place (same parameters, same
    values). Returns ``module``."""
    if not PADDLE:
        for weight in linear_weights(module).values():
            _relayout(weight)
    return module


def store_row_major(module: nn.Module) -> nn.Module:
    """Store every linear weight of ``module`` row-major (PyTorch's default), in place: what
    FSDP2's ``fully_shard`` needs. Returns ``module``."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear) and not sub.weight.is_contiguous():
            _store(sub.weight, Tensor.contiguous)
    return module


def _relayout(weight: Tensor) -> None:
    if PADDLE or weight.device.type == "meta" or is_input_major(weight):
        return
    _store(weight, lambda data: data.t().contiguous().t())


def _store(weight: Tensor, layout: Callable[[Tensor], Tensor]) -> None:
    """``weight.data = layout(weight.data)``, computed outside inference mode: a weight made in
    an inference-mode forward could not be trained."""
    with torch.inference_mode(False), torch.no_grad():
        weight.data = layout(weight.data)
