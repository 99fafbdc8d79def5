"""Checks of what a layer stack is given of the past: a KV cache or Transformer-XL memories.

The stack validates these itself (so it never imports :mod:`x_transformers.generation`, which
builds on it). Each feature that cannot run with a cache declares it on its module:
``supports_kv_cache = False`` and, to be named in messages, ``kv_cache_keyword = 'shift_tokens'``
(the keyword that turns it on; the class name is used otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


def kv_cache_blockers(module: nn.Module) -> tuple[str, ...]:
    """The keywords of every active feature below ``module`` that cannot use the KV cache."""
    found: list[str] = []
    for submodule in module.modules():
        if getattr(submodule, "supports_kv_cache", True):
            continue
        name = getattr(submodule, "kv_cache_keyword", type(submodule).__name__)
        if name not in found:
            found.append(name)
    return tuple(found)


def check_cache(stack: nn.Module, cache, attn_mask: Tensor | None) -> None:
    """Raise one clear error when a layer stack cannot run with ``cache``."""
    if cache is None:
        return
    where = type(stack).__name__
    blockers = stack.kv_cache_blockers  # collected once, when the stack was built
    if blockers:
        raise ValueError(
            f"{where} cannot use a KV cache: {', '.join(map(repr, blockers))} "
            "do(es) not support caching; call it without 'cache=' (recompute) instead"
        )
    if not stack.causal:
        raise ValueError(f"a KV cache needs a causal stack (Decoder); {where} is bidirectional")
    if attn_mask is not None:
        raise ValueError(
            f"'attn_mask' of shape {tuple(attn_mask.shape)} cannot be combined with a KV cache; "
            "use 'mask' (b, n) for padding"
        )


def check_memories(mems: Sequence[Tensor] | None, x: Tensor, num_layers: int, cache) -> int:
    """Validate the memories given to a stack; return their length (0 without memories)."""
    if mems is None:
        return 0
    if cache is not None:
        raise ValueError(
            "'mems' (Transformer-XL memories) and 'cache' (KV cache) cannot be combined; "
            "memories use the recomputing path"
        )
    if not isinstance(mems, (list, tuple)) or len(mems) != num_layers:
        got = len(mems) if isinstance(mems, (list, tuple)) else type(mems).__name__
        raise ValueError(
            f"'mems' must be a list of {num_layers} tensors (one per self-attention block), "
            f"got {got}"
        )
    lengths = {m.shape[1] for m in mems}
    for m in mems:
        if m.ndim != 3 or m.shape[0] != x.shape[0] or m.shape[-1] != x.shape[-1]:
            raise ValueError(
                f"each memory must have shape (batch={x.shape[0]}, mem_len, {x.shape[-1]}), "
                f"got {tuple(m.shape)}"
            )
    if len(lengths) != 1:
        raise ValueError(f"all memories must have the same length, got {sorted(lengths)}")
    return lengths.pop()
