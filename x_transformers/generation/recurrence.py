"""Transformer-XL recurrence ("Transformer-XL: Attentive Language Models Beyond a Fixed-Length
Context", 1901.02860): each self-attention layer also attends to the hidden states it saw in the
previous segment(s), kept detached and at most ``max_mem_len`` long.

::

    segment 1:  h1 ──layer l──>            memory_l = h1_l[-M:]         (detached)
    segment 2:  h2 ──layer l──>  keys/values from cat(norm(memory_l), norm(h2_l))

Positions of the current segment are offset by the memory length (the stack does it), so rotary,
T5, ALiBi and dynamic biases see the true distances. With ``shift_mem_down = s`` ("ERNIE-Doc",
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

from .sampling import resolve_filter, sample_next_token


def shift_memories(mems: Sequence[Tensor] | None, shift: int) -> list[Tensor] | None:
    """Rotate the per-layer memories down by ``shift``: layer l gets the memory of layer l+shift
    (the top layers get those of the bottom ones)."""
    if mems is None or shift == 0:
        return None if mems is None else list(mems)
    shift %= len(mems)
    return [*mems[shift:], *mems[:shift]]


def next_memories(
    mems: Sequence[Tensor] | None, hiddens: Sequence[Tensor], max_mem_len: int
) -> list[Tensor]:
    """The memories after a segment: per layer, the last ``max_mem_len`` of the old memory
    followed by the layer's input hidden states (b, n, d), detached."""
    if max_mem_len < 1:
        raise ValueError(
            f"return_mems=True needs max_mem_len >= 1 on the wrapper, got {max_mem_len}"
        )
    if mems is None:
        pairs = [(h,) for h in hiddens]
    else:
        pairs = [(m, h) for m, h in zip(mems, hiddens)]
    return [torch.cat(pair, dim=1)[:, -max_mem_len:].detach() for pair in pairs]


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


class XLAutoregressiveWrapper(nn.Module):
    """Next-token training and sampling with Transformer-XL memories (1901.02860) around a
    ``TransformerWrapper(..., max_mem_len=M, attn_layers=Decoder(...))``.

    ``forward`` splits a sequence of any length into segments of ``max_seq_len`` and carries the
    memories between them (gradients stop at segment boundaries); ``generate`` does the same
    while sampling, so it can go on far beyond ``max_seq_len``.
    """

    def __init__(self, net: nn.Module, ignore_index: int = -100, pad_value: int = 0):
        super().__init__()
        if not getattr(getattr(net, "attn_layers", None), "causal", False):
            raise ValueError("XLAutoregressiveWrapper needs a causal model (attn_layers=Decoder)")
        if getattr(net, "max_mem_len", 0) < 1:
            raise ValueError(
                "XLAutoregressiveWrapper needs a wrapper built with max_mem_len >= 1, got "
                f"{getattr(net, 'max_mem_len', None)}"
            )
        self.net = net
        self.max_seq_len = net.max_seq_len
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
                logits.transpose(1, 2),
                segment_target,
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
        segment (at most ``max_seq_len`` tokens) plus the memories of the earlier ones."""
        from .autoregressive import pad_after_eos

        resolve_filter(filter_logits_fn)
        unbatched = prompts.ndim == 1
        out = prompts[None] if unbatched else prompts
        if out.ndim != 2 or out.shape[1] < 1:
            raise ValueError(
                f"prompts must have shape (batch, len >= 1), got {tuple(prompts.shape)}"
            )
        prompt_len, segment_start = out.shape[1], 0
        was_training = self.net.training
        self.net.eval()
        for _ in range(seq_len):
            while out.shape[1] - segment_start > self.max_seq_len:  # commit a full segment
                segment = out[:, segment_start : segment_start + self.max_seq_len]
                _, mems = self.net(segment, mems=mems, return_mems=True)
                segment_start += self.max_seq_len
            logits = self.net(out[:, segment_start:], mems=mems)[:, -1]
            next_token = sample_next_token(logits, temperature, filter_logits_fn, filter_kwargs)
            out = torch.cat((out, next_token[:, None]), dim=1)
            if eos_token is not None and (out[:, prompt_len:] == eos_token).any(-1).all():
                break
        self.net.train(was_training)
        generated = out[:, prompt_len:]
        if eos_token is not None:
            generated = pad_after_eos(generated, eos_token, self.pad_value)
            generated = F.pad(generated, (0, seq_len - generated.shape[1]), value=self.pad_value)
        return generated[0] if unbatched else generated
