"""Transformer-XL recurrence ("Transformer-XL: Attentive Language Models Beyond a Fixed-Length
Context", 1901.02860): each self-attention layer also attends to the hidden states it saw in the
previous segment(s), kept detached and at most ``max_mem_len`` long.

::

    segment 1:  h1 ──layer l──>            memory_l = h1_l[-M:]         (detached)
    segment 2:  h2 ──layer l──>  keys/values from cat(norm(memory_l), norm(h2_l))

Positions of the current segment are offset by the memory length (the stack does it), so rotary,
T5, ALiBi and dynamic biases see the true distances. The memories carry the key-padding mask of
the positions they remember (:class:`Memories`): a position that was padding stays masked in
every later segment. With ``shift_mem_down = s`` ("ERNIE-Doc",
2012.15688, enhanced recurrence) the memories of layer ``l + s`` are fed to layer ``l``: the
list of memories is rotated down by ``s`` before the layers use it.

:class:`XLAutoregressiveWrapper` trains on sequences longer than ``max_seq_len`` segment by
segment and generates across segments, carrying the memories.

Shape letters: b batch, m memory length, n segment length, d width.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..hub.mixin import PretrainedMixin
from .decode import eval_mode
from .interface import decoding_spec
from .loop import check_eos_and_pad, check_num_new, make_sampler, sample_tokens


class Memories(list):
    """The per-layer memories (b, m, d) of a segment, with the key-padding ``mask`` (b, m) of
    the positions they remember (True = real; None when every position was real).

    A plain list of tensors is accepted wherever memories are (every position visible); the
    wrappers' ``return_mems=True`` gives this list, so a position that was padding when it was
    computed stays masked in every later segment that remembers it. The layer stack reads the
    ``mask`` attribute (duck-typed, like the KV cache protocol).
    """

    def __init__(self, tensors: Sequence[Tensor], mask: Tensor | None = None):
        super().__init__(tensors)
        expected = self[0].shape[:2] if self else None
        if mask is not None and (mask.dtype != torch.bool or mask.shape != expected):
            raise ValueError(
                f"the memories' mask must be a bool tensor of shape (batch, mem_len) = "
                f"{expected and tuple(expected)}, got {mask.dtype} {tuple(mask.shape)}"
            )
        self.mask = mask


def shift_memories(mems: Sequence[Tensor] | None, shift: int) -> Memories | None:
    """Rotate the per-layer memories down by ``shift``: layer l gets the memory of layer l+shift
    (the top layers get those of the bottom ones). Every layer remembers the same positions, so
    the mask stays as it is."""
    if mems is None:
        return None
    mask = getattr(mems, "mask", None)
    shift = shift % len(mems) if mems else 0
    return Memories([*mems[shift:], *mems[:shift]], mask)


def next_memories(
    mems: Sequence[Tensor] | None,
    hiddens: Sequence[Tensor],
    max_mem_len: int,
    mask: Tensor | None = None,
) -> Memories:
    """The memories after a segment: per layer, the last ``max_mem_len`` of the old memory
    followed by the layer's input hidden states (b, n, d), detached; their mask is the old
    memories' mask followed by the segment's key-padding ``mask`` (b, n), cut the same way."""
    if max_mem_len < 1:
        raise ValueError(
            f"return_mems=True needs max_mem_len >= 1 on the wrapper, got {max_mem_len}"
        )
    if mems is None:
        pairs = [(h,) for h in hiddens]
    else:
        pairs = [(m, h) for m, h in zip(mems, hiddens)]
    tensors = [torch.cat(pair, dim=1)[:, -max_mem_len:].detach() for pair in pairs]
    memory_mask = None if mems is None else getattr(mems, "mask", None)
    if memory_mask is None and mask is None:
        return Memories(tensors)
    if mask is None:
        mask = memory_mask.new_ones(hiddens[0].shape[:2])
    if mems is not None and memory_mask is None:
        memory_mask = mask.new_ones(mems[0].shape[:2])
    joined = mask if mems is None else torch.cat((memory_mask, mask), dim=1)
    return Memories(tensors, joined[:, -max_mem_len:])


class XLAutoregressiveWrapper(PretrainedMixin, nn.Module):
    """Next-token training and sampling with Transformer-XL memories (1901.02860) around a
    ``TransformerWrapper(..., max_mem_len=M, attn_layers=Decoder(...))``.

    ``forward`` splits a sequence of any length into segments of ``max_seq_len`` and carries the
    memories between them (gradients stop at segment boundaries); ``generate`` does the same
    while sampling, so it can go on far beyond ``max_seq_len``.
    """

    def __init__(self, net: nn.Module, ignore_index: int = -100, pad_value: int = 0):
        super().__init__()
        spec = decoding_spec(net, "XLAutoregressiveWrapper")
        if not spec.causal:
            raise ValueError("XLAutoregressiveWrapper needs a causal model (attn_layers=Decoder)")
        if spec.max_mem_len < 1:
            raise ValueError(
                "XLAutoregressiveWrapper needs a wrapper built with max_mem_len >= 1, got "
                f"{spec.max_mem_len}"
            )
        self.net = net
        self.max_seq_len = spec.max_seq_len
        self.ignore_index, self.pad_value = ignore_index, pad_value

    def forward(self, x: Tensor, mems: list[Tensor] | None = None, return_mems: bool = False):
        """x (b, n) with any n >= 2 -> mean cross-entropy of x[:, 1:] given x[:, :-1], computed
        segment by segment (equal to one long pass with the XL attention window)."""
        if x.ndim != 2 or x.shape[1] < 2:
            raise ValueError(f"need token ids of shape (batch, seq_len >= 2), got {tuple(x.shape)}")
        inp, target = x[:, :-1], x[:, 1:]
        total_loss, num_targets = 0.0, (target != self.ignore_index).sum().clamp(min=1)
        for start in range(0, inp.shape[1], self.max_seq_len):
            segment = inp[:, start : start + self.max_seq_len]
            logits, mems = self.net(segment, mems=mems, return_mems=True)
            segment_target = target[:, start : start + self.max_seq_len]
            total_loss = total_loss + F.cross_entropy(
                logits.flatten(0, 1),  # (b * n, v): class axis last in torch and Paddle alike
                segment_target.flatten(),
                ignore_index=self.ignore_index,
                reduction="sum",
            )
        loss = total_loss / num_targets
        return (loss, mems) if return_mems else loss

    @torch.no_grad()
    def generate(
        self,
        prompts: Tensor,
        seq_len: int,
        eos_token: int | None = None,
        temperature: float = 1.0,
        filter_logits_fn: str | Callable[..., Tensor] | None = "top_k",
        filter_kwargs: dict | None = None,
        mems: list[Tensor] | None = None,
    ) -> Tensor:
        """Sample ``seq_len`` tokens after ``prompts`` (b, n) or (n,); the model sees the current
        segment (at most ``max_seq_len`` tokens) plus the memories of the earlier ones.
        ``seq_len=0`` gives an empty (b, 0) result; a negative one raises ``ValueError``."""
        sample = make_sampler(temperature, filter_logits_fn, filter_kwargs)
        seq_len = check_num_new(seq_len)
        check_eos_and_pad(eos_token, self.pad_value, None)
        unbatched = prompts.ndim == 1
        tokens = prompts[None] if unbatched else prompts
        if tokens.ndim != 2 or tokens.shape[1] < 1:
            raise ValueError(
                f"prompts must have shape (batch, len >= 1), got {tuple(prompts.shape)}"
            )
        if seq_len == 0:
            empty = tokens.new_empty(tokens.shape[0], 0, dtype=torch.long)
            return empty[0] if unbatched else empty
        session = SegmentSession(self.net, self.max_seq_len, mems)
        with eval_mode(self.net):
            logits = session.prefill(tokens)
            out = sample_tokens(session, logits, seq_len, sample, eos_token, self.pad_value)
        return out[0] if unbatched else out


class SegmentSession:
    """The growing sequence of one Transformer-XL generation: the tokens of the current segment
    are recomputed at every step on top of the memories; when the segment outgrows
    ``max_seq_len``, its first ``max_seq_len`` tokens are committed to the memories."""

    def __init__(self, net: nn.Module, max_seq_len: int, mems: list[Tensor] | None = None):
        self.net, self.max_seq_len, self.mems = net, max_seq_len, mems
        self.segment: Tensor | None = None  # (b, n) tokens not yet in the memories

    def prefill(self, tokens: Tensor) -> Tensor:
        """Start from ``tokens`` (b, n); returns the logits (b, v) of the last position."""
        self.segment = tokens
        return self._logits()

    def step(self, new: Tensor) -> Tensor:
        """Append ``new`` (b, 1); returns the logits (b, v) of the last position."""
        self.segment = torch.cat((self.segment, new), dim=1)
        return self._logits()

    def _logits(self) -> Tensor:
        while self.segment.shape[1] > self.max_seq_len:  # commit a full segment
            full = self.segment[:, : self.max_seq_len]
            _, self.mems = self.net(full, mems=self.mems, return_mems=True)
            self.segment = self.segment[:, self.max_seq_len :]
        return self.net(self.segment, mems=self.mems)[:, -1]
