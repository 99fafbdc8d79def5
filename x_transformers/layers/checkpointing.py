"""Activation checkpointing of every block (``checkpoint_blocks=True``).

"Training Deep Nets with Sublinear Memory Cost" (Chen et al., 1604.06174): a block's
intermediate activations are not kept for the backward pass; ``torch.utils.checkpoint``
(non-reentrant, RNG state preserved so dropout is replayed) recomputes them from the block's
input when the gradient reaches it. Only the input of every block stays in memory.

Blocks that hand data to later blocks through the forward's :class:`ForwardState` (residual
attention scores, the first block's values) read the state as it was when they first ran: each
call snapshots the state's entries, and the recomputation in the backward pass runs on a copy of
that snapshot, so it sees what the first run saw. Decoding with a KV cache and every forward
without gradients run the block directly (there is nothing to recompute).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..attention import ForwardState
from ..backend import checkpoint


def checkpointed_call(block: nn.Module, x: Tensor, inputs: dict, past: dict):
    """``block(x, **inputs, **past)`` under ``torch.utils.checkpoint`` while training."""
    if not torch.is_grad_enabled() or "cache" in past:
        return block(x, **inputs, **past)
    state = inputs.get("state")
    if state is None:
        return checkpoint(lambda h: block(h, **inputs, **past), x, use_reentrant=False)
    snapshot = {key: state.get(key) for key in state.keys()}
    first_run = [True]

    def run(h: Tensor):
        local_state = ForwardState()
        for key, value in snapshot.items():
            local_state.put(key, value)
        out = block(h, **{**inputs, "state": local_state}, **past)
        if first_run[0]:  # the recomputation must not overwrite what later blocks wrote
            first_run[0] = False
            for key in local_state.keys():
                state.put(key, local_state.get(key))
        return out

    return checkpoint(run, x, use_reentrant=False)
