"""``ContinuousAutoregressiveWrapper``: next-vector regression and generation.

Shape letters: b batch, n sequence, d vector width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..finite_inputs import zero_masked_and_check_finite
from ..hub.mixin import PretrainedMixin
from ..layers.validation import check_mask
from .decode import eval_mode, open_session
from .interface import decoding_spec
from .loop import check_num_new


class ContinuousAutoregressiveWrapper(PretrainedMixin, nn.Module):
    """Predict x[:, t + 1] from x[:, :t + 1] with a mean-squared error, around a
    ``ContinuousTransformerWrapper`` with a ``Decoder``."""

    def __init__(self, net: nn.Module, loss_fn=F.mse_loss):
        super().__init__()
        spec = decoding_spec(net, "ContinuousAutoregressiveWrapper")
        if not spec.causal:
            raise ValueError("ContinuousAutoregressiveWrapper needs attn_layers=Decoder(...)")
        self.net, self.loss_fn, self.max_seq_len = net, loss_fn, spec.max_seq_len

    def forward(self, x: Tensor, mask: Tensor | None = None, **kwargs) -> Tensor:
        """x (b, n, d); ``mask`` (b, n) bool, True = real vector. Padded targets do not count;
        when none counts (e.g. an all-False mask) the loss is 0."""
        if x.ndim != 3 or x.shape[1] < 2:
            raise ValueError(
                f"need vectors of shape (batch, seq_len >= 2, dim), got {tuple(x.shape)}"
            )
        check_mask(x, mask, "mask")
        x = zero_masked_and_check_finite(x, mask, "x")  # a NaN padded target is no NaN loss
        inp, target = x[:, :-1], x[:, 1:]
        out = self.net(inp, mask=None if mask is None else mask[:, :-1], **kwargs)
        loss = self.loss_fn(out, target, reduction="none")
        if mask is None:
            return loss.mean()
        weights = mask[:, 1:, None].to(loss.dtype).expand_as(loss)
        return (loss * weights).sum() / weights.sum().clamp(min=1.0)

    @torch.no_grad()
    def generate(
        self,
        start: Tensor,
        seq_len: int,
        cache_kv: bool = True,
        cache_kind: str = "dynamic",
        **kwargs,
    ) -> Tensor:
        """Generate ``seq_len`` vectors after ``start``: (b, n, d) gives (b, seq_len, d); an
        unbatched (n, d) or (d,) start gives (seq_len, d). ``cache_kv`` reuses the keys and
        values of past positions (see :class:`~.decode.DecodeSession`). ``seq_len=0`` gives an
        empty (b, 0, d) result; a negative ``seq_len`` or an empty ``start`` raise
        ``ValueError``."""
        seq_len = check_num_new(seq_len)
        if self.net.dim_in != self.net.dim_out:
            raise ValueError(
                f"generation feeds outputs back as inputs: dim_in={self.net.dim_in} must equal "
                f"dim_out={self.net.dim_out}"
            )
        if start.ndim not in (1, 2, 3) or start.shape[-1] != self.net.dim_in:
            raise ValueError(
                f"start must have shape (b, n, {self.net.dim_in}), (n, {self.net.dim_in}) or "
                f"({self.net.dim_in},), got {tuple(start.shape)}"
            )
        if start.ndim > 1 and start.shape[-2] == 0:
            raise ValueError(f"start must not be empty, got shape {tuple(start.shape)}")
        unbatched = start.ndim < 3
        out = start.reshape(1, -1, start.shape[-1]) if unbatched else start
        if seq_len == 0:
            empty = out.new_empty(out.shape[0], 0, out.shape[-1])
            return empty[0] if unbatched else empty
        session = open_session(
            self.net,
            decoding_spec(self.net, "ContinuousAutoregressiveWrapper"),
            out.shape[1],
            seq_len,
            cache_kv=cache_kv,
            cache_kind=cache_kind,
            layer_inputs=kwargs,
            where="generate",
        )
        generated = []
        with eval_mode(self.net):
            next_vector = session.prefill(out)
            for step in range(seq_len):
                generated.append(next_vector)
                if step + 1 < seq_len:
                    next_vector = session.step(next_vector[:, None])
        generated = torch.stack(generated, dim=1)  # (b, seq_len, d)
        return generated[0] if unbatched else generated
