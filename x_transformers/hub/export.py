"""Graph export: ``torch.export`` and ONNX of a model's forward, and of one decode step with a
static KV cache whose state is passed in and out explicitly.

::

    program = export_forward(model, tokens)                 # torch.export.ExportedProgram
    onnx_program = export_onnx(model, tokens)              # torch.onnx.ONNXProgram

    step = DecodeStep(model, capacity=64)                   # the cache as plain tensors
    logits, state = step.prefill(prompt)                    # eager, fills a StaticKVCache
    program = export_decode_step(model, capacity=64, example=prompt)
    logits, *state = program.module()(next_token, *state)   # one token, static shapes

A decode step's state is ``(offset, key_padding, keys_0, values_0, keys_1, values_1, ...)``:
the write position (0-d int64), which cache positions hold real keys (b, capacity), and the
(b, h, capacity, d) key / value buffers of every self-attention block. The exported step returns
the next-token outputs (b, v) followed by the new state, so it can be run in a loop by any
runtime. Features that cannot run with a KV cache (``shift_tokens``, ...) or whose cache is not
a plain tensor state (cross-attention context, Transformer-XL memories) raise
:class:`ExportError` naming them. Models are exported in eval mode.

Shape letters: b batch, n new positions, v vocabulary (or output width).
"""

from __future__ import annotations

import os
import re
import warnings

import torch
from torch import Tensor, nn

from ..generation.decode import decode_step, eval_mode
from ..generation.kv_cache import StaticKVCache, StaticSlot


class ExportError(ValueError):
    """The model cannot be exported as asked; the message names the feature."""


def _check_forward_features(net: nn.Module, where: str) -> None:
    stack = getattr(net, "attn_layers", None)
    if stack is None:
        raise ExportError(f"{where} exports a TransformerWrapper or ContinuousTransformerWrapper")
    if getattr(net, "max_mem_len", 0) > 0:
        raise ExportError(f"{where}: 'max_mem_len' (Transformer-XL memories) cannot be exported")


def export_forward(net: nn.Module, example: Tensor, **kwargs):
    """``torch.export.export`` of ``net(example, **kwargs)`` in eval mode (shapes as in
    ``example``; export again for another length)."""
    _check_forward_features(net, "export_forward")
    with eval_mode(net):
        return torch.export.export(net, (example,), kwargs=kwargs or None)


def export_onnx(net: nn.Module, example: Tensor, path: str | os.PathLike | None = None):
    """``torch.onnx.export`` (the ``torch.export``-based exporter; needs the ``onnx`` and
    ``onnxscript`` packages) of ``net(example)`` in eval mode, written to ``path`` if given.
    An operation ONNX cannot express raises :class:`ExportError` naming the feature (the
    keyword of the module that runs it)."""
    return _to_onnx(net, export_forward(net, example), path)


def _to_onnx(net: nn.Module, program, path):
    with warnings.catch_warnings():  # torch's own exporter uses a deprecated pytree API
        warnings.filterwarnings("ignore", ".*LeafSpec.*", FutureWarning)
        try:
            onnx_program = torch.onnx.export(program, dynamo=True, verbose=False)
        except Exception as error:  # torch.onnx's ConversionError, with the failing graph node
            raise ExportError(_onnx_failure(net, program, error)) from error
    if path is not None:
        onnx_program.save(str(path))
    return onnx_program


def _onnx_failure(net: nn.Module, program, error: Exception) -> str:
    """Which feature an ONNX conversion error comes from: the operation it names, the module
    that ran it (the graph node's ``nn_module_stack``), and the innermost such module declaring
    a ``keyword``."""
    messages, cause = [], error
    while cause is not None:  # the node is named by the error's causes
        messages.append(str(cause))
        cause = cause.__cause__
    found = re.search(r"target=torch\.ops\.(\w+\.\w+)", "\n".join(messages))
    operation = found.group(1) if found else None
    paths = _module_paths(program, operation) if operation else []
    for path in reversed(paths):
        keyword = getattr(_submodule(net, path), "keyword", None)
        if isinstance(keyword, str):
            return f"{keyword!r} cannot be exported to ONNX: it needs {operation}, which ONNX lacks"
    where = f" (in {paths[-1]})" if paths else ""
    return f"cannot be exported to ONNX: {operation or 'an operation'}{where} has no translation"


def _module_paths(program, operation: str) -> list[str]:
    """The module stack of the first node running ``operation`` ('aten.sort'), looked up in the
    exported graph and in its decomposition (where the ONNX exporter found it)."""
    for graph in (program.graph, program.run_decompositions().graph):
        for node in graph.nodes:
            if str(node.target).startswith(operation) and node.meta.get("nn_module_stack"):
                return [path for path, _ in node.meta["nn_module_stack"].values()]
    return []


def _submodule(net: nn.Module, path: str):
    try:
        return net.get_submodule(path)
    except AttributeError:
        return None


class DecodeStep(nn.Module):
    """One decode step of ``net`` against a :class:`StaticKVCache` of ``capacity`` positions,
    with the cache's state as explicit tensors in and out (see the module docstring)."""

    def __init__(self, net: nn.Module, capacity: int):
        super().__init__()
        _check_forward_features(net, "DecodeStep")
        stack = net.attn_layers
        blockers = list(stack.kv_cache_blockers)
        if blockers:
            raise ExportError(
                f"a decode step cannot be exported: {', '.join(map(repr, blockers))} cannot use "
                "the KV cache"
            )
        if stack.has_cross_attention:
            raise ExportError(
                "a decode step cannot be exported with 'cross_attend': the context's keys are "
                "not part of the static cache state"
            )
        if not stack.causal:
            raise ExportError("a decode step needs a causal stack (Decoder)")
        self.net, self.capacity = net, capacity
        self.slot_indices = [i for i, kind in enumerate(stack.layer_kinds) if kind == "a"]
        self.prefix_length = 0

    def prefill(self, prompt: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Eager prefill of ``prompt`` (b, n, ...): the outputs of its last position (b, v) and
        the cache state after it."""
        cache = StaticKVCache(self.capacity)
        with eval_mode(self.net), torch.no_grad():
            out = decode_step(self.net, prompt, cache)
        self.prefix_length = cache.prefix_length
        return out, self.state_of(cache)

    def state_of(self, cache: StaticKVCache) -> tuple[Tensor, ...]:
        buffers = []
        for index in self.slot_indices:
            slot = cache.slots[index]
            buffers += [slot.keys, slot.values]
        return (cache.offset, cache.key_padding_buffer, *buffers)

    def cache_of(self, offset: Tensor, key_padding: Tensor, buffers) -> StaticKVCache:
        """A cache holding copies of the given state (the step's inputs are not mutated)."""
        cache = StaticKVCache(self.capacity)
        cache.offset, cache.key_padding_buffer = offset.clone(), key_padding.clone()
        cache.prefix_length, cache.is_empty = self.prefix_length, False
        for position, index in enumerate(self.slot_indices):
            slot = StaticSlot(cache)
            slot.keys = buffers[2 * position].clone()
            slot.values = buffers[2 * position + 1].clone()
            cache.slots[index] = slot
        return cache

    def forward(self, inputs: Tensor, offset: Tensor, key_padding: Tensor, *buffers: Tensor):
        """inputs (b, n, ...) new positions -> (outputs (b, v), *new state)."""
        cache = self.cache_of(offset, key_padding, buffers)
        out = decode_step(self.net, inputs, cache)
        return (out, *self.state_of(cache))


def export_decode_step(net: nn.Module, capacity: int, example: Tensor):
    """``(exported step, prefill outputs, state)``: the prompt ``example`` (b, n) is prefilled
    eagerly, then one step of a single new position is exported with ``torch.export``."""
    step = DecodeStep(net, capacity)
    out, state = step.prefill(example)
    new = example[:, -1:]
    with eval_mode(net):
        program = torch.export.export(step, (new, *state))
    return program, out, state


def export_decode_step_onnx(
    net: nn.Module, capacity: int, example: Tensor, path: str | os.PathLike | None = None
):
    """``(ONNX program, prefill outputs, state)``: :func:`export_decode_step` through
    ``torch.onnx.export``; the ONNX inputs are ``inputs, offset, key_padding, buffers_0, ...``
    and the outputs the step's outputs followed by the new state."""
    program, out, state = export_decode_step(net, capacity, example)
    return _to_onnx(net, program, path), out, state
