"""Memory tokens: learned vectors put before the sequence, passed through every layer with it and
removed from the output ("Memory Transformer", 2006.11527; the same idea as the "registers" of
"Vision Transformers Need Registers", 2309.16588).

They act as a global scratchpad. In a ``Decoder`` they come first, so every position may attend
to them while they themselves see no input token: causality is kept without a special mask.
They carry no absolute position (they are added after the embedding) and are always visible in
the key-padding mask.

:func:`run_layers` is the wrappers' memory stage around the layer stack::

    h ── memory tokens in front ── layer stack (XL memories, KV cache) ── strip ──> h
                                        └── inputs of the self-attention blocks ──> next memories

With a KV cache the memory tokens are put in front on the first forward only (they are cached).

Shape letters: b batch, m memory tokens, n sequence, d width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..generation.recurrence import next_memories, shift_memories


class MemoryTokens(nn.Module):
    """``num_memory_tokens`` learned vectors of width ``dim`` ("Memory Transformer",
    2006.11527)."""

    def __init__(self, num_memory_tokens: int, dim: int):
        super().__init__()
        if num_memory_tokens < 1:
            raise ValueError(f"'num_memory_tokens' must be >= 1, got {num_memory_tokens}")
        self.num_memory_tokens = num_memory_tokens
        self.tokens = nn.Parameter(torch.randn(num_memory_tokens, dim) * 0.02)

    def prepend(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(b, n, d) -> (b, m + n, d); the mask (b, n) -> (b, m + n) with the memory visible."""
        memory = self.tokens.to(x.dtype).expand(x.shape[0], -1, -1)  # (b, m, d)
        x = torch.cat((memory, x), dim=1)
        if mask is not None:
            visible = mask.new_ones(mask.shape[0], self.num_memory_tokens)
            mask = torch.cat((visible, mask), dim=1)
        return x, mask

    def strip(self, x: Tensor) -> Tensor:
        """(b, m + n, ...) -> (b, n, ...)."""
        return x[:, self.num_memory_tokens :]


def build_memory_tokens(num_memory_tokens: int, dim: int) -> MemoryTokens | None:
    return MemoryTokens(num_memory_tokens, dim) if num_memory_tokens > 0 else None


def run_layers(wrapper: nn.Module, h: Tensor, mask: Tensor | None, num_positions: int, **kwargs):
    """Run ``wrapper.attn_layers`` on the stem's output h (b, p + n, d), where the last
    ``num_positions`` are the sequence proper; returns (h (b, p + n, d), intermediates).

    Keywords: ``mems`` and ``return_mems`` (Transformer-XL, with the wrapper's ``max_mem_len``
    and ``shift_mem_down``), ``cache`` (KV cache) and the stack's own keywords.
    """
    mems, cache = kwargs.pop("mems", None), kwargs.get("cache")
    return_mems = kwargs.pop("return_mems", False)
    memory_tokens = wrapper.memory_tokens
    first_forward = cache is None or cache.is_empty
    if memory_tokens is not None and first_forward:
        h, mask = memory_tokens.prepend(h, mask)
    if cache is not None and first_forward:
        cache.prefix_length = h.shape[1] - num_positions  # memory tokens, prepended embeddings
    layer_mems = shift_memories(mems, wrapper.shift_mem_down)
    h, intermediates = wrapper.attn_layers(
        h, mask=mask, mems=layer_mems, return_hiddens=True, **kwargs
    )
    strip = memory_tokens.strip if memory_tokens is not None and first_forward else None
    if strip is not None:
        h = strip(h)
    if return_mems:
        hiddens = intermediates.self_attention_inputs
        hiddens = hiddens if strip is None else [strip(hidden) for hidden in hiddens]
        intermediates.mems = next_memories(mems, hiddens, wrapper.max_mem_len)
    return h, intermediates
