"""Reversible residual layers (``reversible=True``): activation memory flat in depth.

RevNets ("The Reversible Residual Network", 1707.04585) and the Reformer (2001.04451). The plan
is read as units, each one or more attention blocks ('a' / 'c') followed by one feedforward
block ('f'); a unit couples two streams::

    y1 = x1 + F(x2)        F: the attention branch paths (norm, branch, scale, dropout;
    y2 = x2 + G(y1)           no residual), composed when a unit has several
                           G: the feedforward branch path

and is inverted exactly by ``x2 = y2 - G(y1)``, ``x1 = y1 - F(x2)``. The stack runs on
``(x1, x2) = (x, x)`` and returns ``final_norm((y1 + y2) / 2)``. The forward keeps no
activation: only the last outputs are saved, and the backward pass walks the units in reverse,
rebuilding each unit's inputs from its outputs and differentiating F and G on the spot. Dropout
and stochastic depth are replayed identically: the CPU (and CUDA) RNG state is saved before
every F and G and restored around its recomputation, and the block skips are drawn once.

Without gradients (evaluation, KV-cache decoding) the same coupling runs directly; nothing is
recomputed, so the cache, ``return_attn`` and the ``hiddens`` (the stream each branch reads)
work there. Refused: XL memories (``mems``, and a wrapper's ``max_mem_len`` at construction), a
KV cache or ``return_attn`` while gradients are recorded (``hiddens`` are then ``None``), and, at
construction, layouts that do not pair and features handing data between blocks outside the two
streams (:data:`x_transformers.options.blocks.REVERSIBLE_CONFLICTS`).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ..attention.stages import AttentionStage
from ..backend import backward_gradients, replay_rng, rng_state, saved_tensors
from .conditioning import apply_norm
from .intermediates import LayerIntermediates
from .layout import FEEDFORWARD, SELF_ATTENTION

Unit = tuple[tuple[int, ...], int]  # (indices of the attention blocks, index of the feedforward)


def pair_units(kinds: tuple[str, ...], custom_layers=None) -> list[Unit]:
    """Units of the plan: attention blocks followed by one feedforward; refuse anything else."""
    units, pending = [], []
    for index, kind in enumerate(kinds):
        if kind != FEEDFORWARD:
            pending.append(index)
        elif pending:
            units.append((tuple(pending), index))
            pending = []
        else:
            break  # a feedforward without attention before it
    else:
        if not pending:
            return units
    layout = f"custom_layers={custom_layers!r}" if custom_layers else f"the plan {kinds!r}"
    raise ValueError(
        f"'reversible' needs a layout of (attention..., feedforward) units, got {layout}: "
        "every feedforward must follow attention and every attention be followed by one"
    )


def check_reversible(stack) -> list[Unit]:
    """The units of a reversible stack; refuses attention stages that hand data to later
    blocks through the forward's state (whatever their keyword)."""
    for module in stack.blocks.modules():
        if isinstance(module, AttentionStage) and module.state_key is not None:
            raise ValueError(
                f"'reversible' and '{module.keyword}' cannot be combined: '{module.keyword}' "
                "hands data from block to block outside the reversible coupling"
            )
    return pair_units(stack.layer_kinds, stack.config.blocks.custom_layers)


def run_reversible(stack, x: Tensor, prepared) -> tuple[Tensor, LayerIntermediates]:
    """The reversible executor of the plan (see the module docstring)."""
    if prepared.mems is not None:
        raise ValueError("'reversible' and 'mems' cannot be combined: Transformer-XL memories")
    coupling = Coupling(stack, prepared, [stack._skip_block() for _ in stack.blocks])
    intermediates = LayerIntermediates(state=prepared.state)
    params = [p for p in stack.blocks.parameters() if p.requires_grad]
    if torch.is_grad_enabled() and (x.requires_grad or params):
        need_weights = any(inputs.get("need_weights") for inputs in prepared.block_inputs.values())
        for name, given in (("cache", prepared.cache is not None), ("return_attn", need_weights)):
            if given:
                raise ValueError(
                    f"'reversible' and '{name}' cannot be combined while training (with "
                    "gradients; a wrapper's return_intermediates=True records a cache); use "
                    "torch.no_grad() for inference"
                )
        # the blocks' inputs are rebuilt in the backward pass, never kept: nothing to return
        intermediates.hiddens = intermediates.self_attention_inputs = None
        coupling.track_gradients(params, differentiable_tensors(prepared.block_inputs))
        y1, y2 = ReversibleFunction.apply(coupling, x, *params, *coupling.extras)
    else:
        y1, y2 = coupling.forward(x, x, intermediates)
    x = apply_norm(stack.final_norm, (y1 + y2) / 2, prepared.condition)  # adaptive: condition
    if prepared.cache is not None:
        prepared.cache.advance(x.shape[1])
        intermediates.cache = prepared.cache
    return x, intermediates


def differentiable_tensors(value) -> list[Tensor]:
    """Tensors requiring grad inside the blocks' inputs (context, positional biases, ...)."""
    if isinstance(value, Tensor):
        return [value] if value.requires_grad else []
    if isinstance(value, dict):
        value = list(value.values())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    if isinstance(value, (list, tuple)):
        found = [t for item in value for t in differentiable_tensors(item)]
        return list({id(t): t for t in found}.values())
    return []


class Coupling:
    """The F and G of every unit (the RevNet coupling, 1707.04585), with the RNG states, block
    skips and autocast state of one forward."""

    def __init__(self, stack, prepared, skips: list[bool]):
        self.stack, self.prepared, self.skips = stack, prepared, skips
        self.units: list[Unit] = stack.reversible_units
        self.rng_states: list[tuple] = []  # (F state, G state) per unit
        self.params: list[Tensor] = []
        self.extras: list[Tensor] = []
        self.slots: dict[int, list[int]] = {}  # block index -> positions of its params
        self.autocast: tuple | None = None  # (device type, enabled, dtype) of the forward

    def track_gradients(self, params: list[Tensor], extras: list[Tensor]) -> None:
        """The tensors whose gradients the backward pass returns: parameters, then extras."""
        self.params, self.extras = params, extras
        position = {id(p): i for i, p in enumerate(params)}
        for index, block in enumerate(self.stack.blocks):
            self.slots[index] = [position[id(p)] for p in block.parameters() if id(p) in position]

    def branch(self, index: int, h: Tensor, past: bool, intermediates=None) -> Tensor | None:
        """Block ``index``'s branch path on h; None when stochastic depth skips it."""
        if self.skips[index]:
            return None
        block, kind = self.stack.blocks[index], self.stack.layer_kinds[index]
        if intermediates is not None:  # the stream this block's branch reads
            intermediates.hiddens.append(h)
            if kind == SELF_ATTENTION:
                intermediates.self_attention_inputs.append(h)
        extra = self.stack._past_inputs(index, block, None, self.prepared.cache) if past else {}
        out, attention = block.branch_path(h, **self.prepared.block_inputs[kind], **extra)
        if intermediates is not None and attention is not None:
            intermediates.attn_intermediates.append(attention)
        return out

    def f(self, unit: Unit, x2: Tensor, past=False, intermediates=None) -> Tensor | None:
        """F: the attention blocks of the unit composed (each adds its output to the stream)."""
        total, stream = None, x2
        for index in unit[0]:
            out = self.branch(index, stream, past, intermediates)
            if out is not None:
                stream = stream + out
                total = out if total is None else total + out
        return total

    def g(self, unit: Unit, y1: Tensor, intermediates=None) -> Tensor | None:
        return self.branch(unit[1], y1, past=False, intermediates=intermediates)

    def forward(self, x1: Tensor, x2: Tensor, intermediates=None) -> tuple[Tensor, Tensor]:
        """The coupled streams through every unit (saving the RNG state before each F and G)."""
        past = intermediates is not None
        device_type = x1.device.type
        self.autocast = (
            device_type,
            torch.is_autocast_enabled(device_type),
            torch.get_autocast_dtype(device_type),
        )
        for unit in self.units:
            state_f = rng_state(x1.device)
            out = self.f(unit, x2, past, intermediates)
            y1 = x1 if out is None else x1 + out
            state_g = rng_state(x1.device)
            out = self.g(unit, y1, intermediates)
            x1, x2 = y1, (x2 if out is None else x2 + out)
            self.rng_states.append((state_f, state_g))
        return x1, x2

    def backward_unit(self, position: int, y1, y2, dy1, dy2, grads: list):
        """Rebuild unit ``position``'s inputs from its outputs and carry the gradients back;
        the gradients of the parameters and extras are added to ``grads``."""
        unit = self.units[position]
        state_f, state_g = self.rng_states[position]
        g_out, dy1_from_g = self.differentiate(
            lambda h: self.g(unit, h), [unit[1]], y1, dy2, state_g, grads
        )
        x2 = y2 if g_out is None else y2 - g_out
        dy1 = dy1 if dy1_from_g is None else dy1 + dy1_from_g
        f_out, dx2_from_f = self.differentiate(
            lambda h: self.f(unit, h), unit[0], x2, dy1, state_f, grads
        )
        x1 = y1 if f_out is None else y1 - f_out
        dx2 = dy2 if dx2_from_f is None else dy2 + dx2_from_f
        return x1, x2, dy1, dx2

    def differentiate(self, function, blocks, h: Tensor, grad_out: Tensor, state, grads: list):
        """Recompute ``function(h)`` (which runs ``blocks``) under the forward's RNG state and
        autocast; return its value (detached) and the gradient reaching h, adding the gradients
        of the blocks' parameters and of the extras to ``grads``."""
        device_type, enabled, dtype = self.autocast
        with (
            torch.enable_grad(),
            replay_rng(h.device, state),
            torch.autocast(device_type, dtype=dtype, enabled=enabled),
        ):
            h = h.detach().requires_grad_()
            out = function(h)
        if out is None:
            return None, None
        param_slots = [slot for index in blocks for slot in self.slots[index]]
        wrt = [h, *(self.params[slot] for slot in param_slots), *self.extras]
        parts = torch.autograd.grad(out, wrt, grad_out, allow_unused=True)
        extra_slots = range(len(self.params), len(self.params) + len(self.extras))
        for slot, part in zip([*param_slots, *extra_slots], parts[1:]):
            if part is not None:
                grads[slot] = part if grads[slot] is None else grads[slot] + part
        return out.detach(), parts[0]


class ReversibleFunction(torch.autograd.Function):
    """Runs a :class:`Coupling` keeping only its final outputs; the backward pass inverts it
    unit by unit (RevNet, 1707.04585; Reformer, 2001.04451)."""

    @staticmethod
    def forward(ctx, coupling: Coupling, x: Tensor, *differentiable: Tensor):
        y1, y2 = coupling.forward(x, x)
        ctx.coupling = coupling
        ctx.save_for_backward(y1, y2)
        return y1, y2

    @staticmethod
    def backward(ctx, dy1: Tensor | None, dy2: Tensor | None):
        coupling: Coupling = ctx.coupling
        y1, y2 = saved_tensors(ctx)
        dy1 = torch.zeros_like(y1) if dy1 is None else dy1
        dy2 = torch.zeros_like(y2) if dy2 is None else dy2
        grads: list = [None] * (len(coupling.params) + len(coupling.extras))
        for position in reversed(range(len(coupling.units))):
            y1, y2, dy1, dy2 = coupling.backward_unit(position, y1, y2, dy1, dy2, grads)
        return backward_gradients(1, dy1 + dy2, *grads)  # none for the coupling
