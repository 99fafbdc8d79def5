"""``NonAutoregressiveWrapper``: masked-token training and iterative parallel decoding
("MaskGIT: Masked Generative Image Transformer", 2202.04200).

Training: per row, draw ``r ~ U(0, 1)`` and mask ``ceil(gamma(r) * N)`` of its N real tokens
(at least one) chosen uniformly at random, where ``gamma`` is the mask schedule (cosine by
default: ``gamma(r) = cos(pi r / 2)``, 1 at r = 0, 0 at r = 1); the loss is the cross-entropy of
the masked positions only.

Decoding with T steps: every position that holds ``mask_id`` is predicted at once; after step
t (1..T) the ``floor(gamma(t / T) * N)`` least confident of the newly predicted tokens are masked
again (N is the row's number of positions to fill; a token once kept stays), so at t = T
every position is filled::

    [M M M M M M] -> predict all, keep the most confident -> [a M c M M f] -> ... -> [a b c d e f]

Left out: MaskGIT's random "choice temperature" on the confidences, self-conditioning and the
token critic (2209.04439).

Shape letters: b batch, n sequence, v vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backend import seeded
from ..hub.mixin import PretrainedMixin
from .decode import eval_mode
from .interface import decoding_spec
from .loop import check_temperature

SCHEDULES: dict[str, Callable[[Tensor], Tensor]] = {
    "cosine": lambda r: torch.cos(r * math.pi / 2),
    "linear": lambda r: 1 - r,
}


class NonAutoregressiveWrapper(PretrainedMixin, nn.Module):
    """MaskGIT training and decoding (2202.04200) around a ``TransformerWrapper`` with a
    non-causal stack (``Encoder``) whose vocabulary includes ``mask_id``.

    Args:
        net: the token model; its logits cover ``num_tokens`` ids, ``mask_id`` among them.
        mask_id: the id of the mask token (never generated).
        steps: default number of decoding steps of :meth:`generate`.
        schedule: mask schedule ``gamma``: 'cosine' (default) or 'linear'.
    """

    def __init__(self, net: nn.Module, *, mask_id: int, steps: int = 18, schedule="cosine"):
        super().__init__()
        spec = decoding_spec(net, "NonAutoregressiveWrapper")
        if spec.causal:
            raise ValueError("NonAutoregressiveWrapper needs a non-causal stack (Encoder)")
        num_tokens = getattr(net, "num_tokens", None)
        if num_tokens is None or isinstance(mask_id, bool) or not isinstance(mask_id, int):
            raise TypeError(f"needs a token model and an int 'mask_id', got {mask_id!r}")
        if not 0 <= mask_id < num_tokens:
            raise ValueError(f"'mask_id' must lie in [0, num_tokens={num_tokens}), got {mask_id}")
        if schedule not in SCHEDULES:
            raise ValueError(f"'schedule' must be one of {list(SCHEDULES)}, got {schedule!r}")
        self.net, self.mask_id, self.schedule = net, mask_id, schedule
        self.steps = check_steps(steps)
        self.max_seq_len = spec.max_seq_len

    def gamma(self, r: Tensor) -> Tensor:
        """The fraction of tokens masked at time ``r`` in [0, 1]."""
        return SCHEDULES[self.schedule](r)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, masked: Tensor | None = None, **kwargs
    ) -> Tensor:
        """x (b, n) token ids, ``mask`` (b, n) True = real token -> the mean cross-entropy over
        the masked positions. ``masked`` (b, n) bool chooses the positions to mask instead of
        the schedule (e.g. for a fixed evaluation)."""
        if x.ndim != 2 or x.shape[1] < 1:
            raise ValueError(f"need token ids of shape (batch, seq_len), got {tuple(x.shape)}")
        real = torch.ones_like(x, dtype=torch.bool) if mask is None else mask.bool()
        if masked is None:
            masked = self.draw_masked(real)
        elif masked.shape != x.shape or masked.dtype != torch.bool:
            raise ValueError(
                f"'masked' must be a bool tensor of shape {tuple(x.shape)}, "
                f"got {masked.dtype} {tuple(masked.shape)}"
            )
        masked = masked & real
        inputs = x.masked_fill(masked, self.mask_id)
        logits = self.net(inputs, mask=mask, **kwargs)  # (b, n, v)
        loss = F.cross_entropy(logits[masked], x[masked], reduction="sum")
        return loss / masked.sum().clamp(min=1)

    def draw_masked(self, real: Tensor) -> Tensor:
        """(b, n) bool: per row ``ceil(gamma(r) * N)`` (at least one) of its N real positions,
        uniformly at random, with ``r ~ U(0, 1)`` per row."""
        count = real.sum(dim=1)  # (b,)
        r = torch.rand(real.shape[0], device=real.device)
        count = count.to(r.dtype)  # explicit: Paddle does not promote int64 * float32
        num_masked = (self.gamma(r) * count).ceil().clamp(min=1).minimum(count).long()  # (b,)
        scores = torch.rand(real.shape, device=real.device).masked_fill(~real, -1.0)
        rank = scores.argsort(dim=1, descending=True).argsort(dim=1)  # (b, n) 0 = highest
        return rank < num_masked[:, None]

    @torch.no_grad()
    def generate(
        self,
        start: Tensor | None = None,
        *,
        batch_size: int = 1,
        seq_len: int | None = None,
        steps: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        **kwargs,
    ) -> Tensor:
        """Fill every ``mask_id`` position of ``start`` (b, n) (the others are kept), or, without
        ``start``, generate ``batch_size`` rows of ``seq_len`` (default ``max_seq_len``) tokens
        from nothing; in ``steps`` parallel steps. ``temperature`` 0 takes the most likely token."""
        check_temperature(temperature)
        steps = self.steps if steps is None else check_steps(steps)
        if start is None:
            seq_len = self.max_seq_len if seq_len is None else seq_len
            device = next(iter(self.net.parameters())).device
            start = torch.full((batch_size, seq_len), self.mask_id, dtype=torch.long, device=device)
        if start.ndim != 2:
            raise ValueError(f"'start' must have shape (batch, seq_len), got {tuple(start.shape)}")
        seq = start.clone()
        to_fill = (seq == self.mask_id).sum(dim=1)  # (b,) N
        with eval_mode(self.net):
            for step in range(1, steps + 1):
                seq = self._step(seq, to_fill, step / steps, temperature, generator, kwargs)
        return seq

    def _step(self, seq, to_fill, time, temperature, generator, kwargs) -> Tensor:
        """One decoding step: predict every masked position, then mask again the
        ``floor(gamma(time) * N)`` least confident of the new tokens."""
        masked = seq == self.mask_id  # (b, n)
        logits = self.net(seq, **kwargs).float()  # (b, n, v)
        logits[..., self.mask_id] = float("-inf")  # the mask token is never generated
        if temperature == 0:
            sampled = logits.argmax(dim=-1)
        else:
            probs = (logits / temperature).softmax(dim=-1)
            flat = torch.multinomial(probs.flatten(0, 1), 1, **seeded(generator))
            sampled = flat.view(seq.shape)
        confidence = logits.softmax(dim=-1).gather(-1, sampled[..., None])[..., 0]  # (b, n)
        confidence = confidence.masked_fill(~masked, float("inf"))  # kept tokens stay
        seq = torch.where(masked, sampled, seq)
        fraction = self.gamma(torch.tensor(time, device=seq.device))
        num_remask = (fraction * to_fill.to(fraction.dtype)).floor().long()  # (b,)
        rank = confidence.argsort(dim=1).argsort(dim=1)  # (b, n) 0 = least confident
        return seq.masked_fill(rank < num_remask[:, None], self.mask_id)


def check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"'steps' must be an int >= 1, got {steps!r}")
    return steps
