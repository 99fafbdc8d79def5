"""``ContinuousAutoregressiveWrapper``: next-vector regression and generation.

Shape letters: b batch, n sequence, d vector width.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backend import seeded
from ..finite_inputs import zero_masked_and_check_finite
from ..hub.mixin import PretrainedMixin
from ..layers.validation import check_mask
from .decode import eval_mode, open_session
from .interface import decoding_spec
from .loop import check_num_new, check_temperature


def gaussian_nll(out: Tensor, target: Tensor, reduction: str = "none") -> Tensor:
    """The Gaussian negative log-likelihood of ``target`` (..., d) under ``out`` (..., d, 2) =
    (mean, log-variance), per element ``0.5 * (logvar + (target - mean) ** 2 / exp(logvar))``
    (the constant ``0.5 * log(2 pi)`` left out, as in ``F.gaussian_nll_loss``)."""
    if reduction != "none":
        raise ValueError(f"gaussian_nll computes per-element losses, got reduction={reduction!r}")
    mean, log_variance = out.unbind(dim=-1)
    return 0.5 * (log_variance + (target - mean).square() * torch.exp(-log_variance))


class ContinuousAutoregressiveWrapper(PretrainedMixin, nn.Module):
    """Predict x[:, t + 1] from x[:, :t + 1] with a mean-squared error, around a
    ``ContinuousTransformerWrapper`` with a ``Decoder``. With a ``probabilistic=True`` net the
    loss is the Gaussian negative log-likelihood (:func:`gaussian_nll`; a mean and variance head
    as in Nix and Weigend, 1994) and ``generate`` samples
    ``mean + exp(0.5 * logvar) * temperature * noise``."""

    def __init__(self, net: nn.Module, loss_fn=None):
        super().__init__()
        spec = decoding_spec(net, "ContinuousAutoregressiveWrapper")
        if not spec.causal:
            raise ValueError("ContinuousAutoregressiveWrapper needs attn_layers=Decoder(...)")
        self.probabilistic = getattr(net, "probabilistic", False)
        if self.probabilistic and loss_fn is not None:
            raise ValueError(
                "'loss_fn' and a 'probabilistic' net cannot be combined: its loss is the "
                "Gaussian negative log-likelihood"
            )
        if loss_fn is None:
            loss_fn = gaussian_nll if self.probabilistic else F.mse_loss
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
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        **kwargs,
    ) -> Tensor:
        """Generate ``seq_len`` vectors after ``start``: (b, n, d) gives (b, seq_len, d); an
        unbatched (n, d) or (d,) start gives (seq_len, d). ``cache_kv`` reuses the keys and
        values of past positions (see :class:`~.decode.DecodeSession`). ``seq_len=0`` gives an
        empty (b, 0, d) result; a negative ``seq_len`` or an empty ``start`` raise
        ``ValueError``. A ``probabilistic`` net samples each vector as ``mean + exp(0.5 *
        logvar) * temperature * noise`` (``temperature=0``: the mean; noise from
        ``generator`` when given); other nets take no ``temperature``."""
        seq_len = check_num_new(seq_len)
        check_temperature(temperature)
        if not self.probabilistic and temperature != 1.0:
            raise ValueError("'temperature' needs a net built with 'probabilistic'=True")
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
        sample = partial(self._sample, temperature=temperature, generator=generator)
        with eval_mode(self.net):
            next_vector = sample(session.prefill(out))
            for step in range(seq_len):
                generated.append(next_vector)
                if step + 1 < seq_len:
                    next_vector = sample(session.step(next_vector[:, None]))
        generated = torch.stack(generated, dim=1)  # (b, seq_len, d)
        return generated[0] if unbatched else generated

    def _sample(self, out: Tensor, temperature: float, generator) -> Tensor:
        """(b, d) outputs, or (b, d, 2) mean and log-variance -> (b, d) vectors."""
        if not self.probabilistic:
            return out
        mean, log_variance = out.unbind(dim=-1)
        if temperature == 0:
            return mean
        noise = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, **seeded(generator))
        return mean + torch.exp(0.5 * log_variance) * temperature * noise
