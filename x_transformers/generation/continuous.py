"""``ContinuousAutoregressiveWrapper``: next-vector regression and generation.

Shape letters: b batch, n sequence, d vector width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ContinuousAutoregressiveWrapper(nn.Module):
    """Predict x[:, t + 1] from x[:, :t + 1] with a mean-squared error, around a
    ``ContinuousTransformerWrapper`` with a ``Decoder``."""

    def __init__(self, net: nn.Module, loss_fn=F.mse_loss):
        super().__init__()
        if not getattr(getattr(net, "attn_layers", None), "causal", False):
            raise ValueError("ContinuousAutoregressiveWrapper needs attn_layers=Decoder(...)")
        self.net, self.loss_fn, self.max_seq_len = net, loss_fn, net.max_seq_len

    def forward(self, x: Tensor, mask: Tensor | None = None, **kwargs) -> Tensor:
        """x (b, n, d); ``mask`` (b, n) True = real vector. Padded targets do not count."""
        if x.ndim != 3 or x.shape[1] < 2:
            raise ValueError(
                f"need vectors of shape (batch, seq_len >= 2, dim), got {tuple(x.shape)}"
            )
        inp, target = x[:, :-1], x[:, 1:]
        out = self.net(inp, mask=None if mask is None else mask[:, :-1], **kwargs)
        loss = self.loss_fn(out, target, reduction="none")
        if mask is None:
            return loss.mean()
        weights = mask[:, 1:, None].to(loss.dtype).expand_as(loss)
        return (loss * weights).sum() / weights.sum().clamp(min=1.0)

    @torch.no_grad()
    def generate(self, start: Tensor, seq_len: int, cache_kv: bool = True, **kwargs) -> Tensor:
        """Generate ``seq_len`` vectors after ``start``: (b, n, d) gives (b, seq_len, d); an
        unbatched (n, d) or (d,) start gives (seq_len, d)."""
        if self.net.dim_in != self.net.dim_out:
            raise ValueError(
                f"generation feeds outputs back as inputs: dim_in={self.net.dim_in} must equal "
                f"dim_out={self.net.dim_out}"
            )
        unbatched = start.ndim < 3
        out = start.reshape(1, -1, start.shape[-1]) if unbatched else start
        prompt_len = out.shape[1]
        was_training = self.net.training
        self.net.eval()
        for _ in range(seq_len):
            next_vector = self.net(out[:, -self.max_seq_len :], **kwargs)[:, -1:]
            out = torch.cat((out, next_vector), dim=1)
        self.net.train(was_training)
        generated = out[:, prompt_len:]
        return generated[0] if unbatched else generated
