"""``AutoregressiveWrapper``: next-token loss and sampling for a token model.

Shape letters: b batch, n sequence, v vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention.masks import combine_masks
from .sampling import resolve_filter, sample_next_token


def forgetful_causal_mask(batch: int, seq_len: int, mask_prob: float, device) -> Tensor:
    """Forgetful causal masking ("Forgetful Causal Masking Makes Causal Language Models Better
    Zero-Shot Learners", 2210.13432): hide a random ``mask_prob`` fraction of past tokens from
    every query. The first token is never hidden, so every query keeps a key."""
    num_hidden = min(int(seq_len * mask_prob), seq_len - 1)
    keep = torch.ones(batch, seq_len, dtype=torch.bool, device=device)
    if num_hidden == 0:
        return keep
    scores = torch.rand(batch, seq_len, device=device)
    scores[:, 0] = -1.0
    hidden = scores.topk(num_hidden, dim=-1).indices
    return keep.scatter(1, hidden, False)


def pad_after_eos(tokens: Tensor, eos_token: int, pad_value: int) -> Tensor:
    """Replace everything after the first ``eos_token`` of each row by ``pad_value``."""
    is_eos = tokens == eos_token
    after_eos = (is_eos.cumsum(dim=-1) - is_eos.long()) > 0
    return tokens.masked_fill(after_eos, pad_value)


class AutoregressiveWrapper(nn.Module):
    """Next-token training and sampling around a ``TransformerWrapper`` with a ``Decoder``.

    Args:
        net: the token model.
        ignore_index: target value excluded from the loss.
        pad_value: token written after ``eos_token`` in generated sequences.
        mask_prob: forgetful causal mask probability (2210.13432); 0 turns it off.
    """

    def __init__(
        self, net: nn.Module, ignore_index: int = -100, pad_value: int = 0, mask_prob: float = 0.0
    ):
        super().__init__()
        if not 0.0 <= mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in [0, 1), got {mask_prob}")
        if not getattr(getattr(net, "attn_layers", None), "causal", False):
            raise ValueError(
                "AutoregressiveWrapper needs a causal model (attn_layers=Decoder(...))"
            )
        self.net = net
        self.max_seq_len = net.max_seq_len
        self.ignore_index, self.pad_value, self.mask_prob = ignore_index, pad_value, mask_prob

    def forward(
        self, x: Tensor, mask: Tensor | None = None, return_outputs: bool = False, **kwargs
    ):
        """x (b, n) -> mean cross-entropy of predicting x[:, 1:] from x[:, :-1]. ``mask`` (b, n)
        marks real tokens (True) versus padding; padded targets do not count."""
        if x.ndim != 2 or x.shape[1] < 2:
            raise ValueError(f"need token ids of shape (batch, seq_len >= 2), got {tuple(x.shape)}")
        inp, target = x[:, :-1], x[:, 1:]
        inp_mask = None
        if mask is not None:
            inp_mask = mask[:, :-1]
            target = target.masked_fill(~mask[:, 1:], self.ignore_index)
        if self.training and self.mask_prob > 0:
            fcm = forgetful_causal_mask(*inp.shape, self.mask_prob, inp.device)
            inp_mask = combine_masks(inp_mask, fcm)
        logits = self.net(inp, mask=inp_mask, **kwargs)
        loss = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=self.ignore_index)
        return (loss, logits) if return_outputs else loss

    @torch.no_grad()
    def generate(
        self,
        prompts: Tensor,
        seq_len: int,
        eos_token: int | None = None,
        temperature: float = 1.0,
        filter_logits_fn: str | Callable[..., Tensor] | None = "top_k",
        filter_kwargs: dict | None = None,
        cache_kv: bool = True,
        **kwargs,
    ) -> Tensor:
        """Sample ``seq_len`` new tokens after ``prompts`` (b, n) or (n,); returns only the new
        tokens, (b, seq_len) or (seq_len,). Rows that emitted ``eos_token`` are padded with
        ``pad_value`` after it. Beyond ``max_seq_len`` the window slides over the last tokens.

        ``cache_kv`` is accepted for forward compatibility; this version recomputes each step.
        """
        resolve_filter(filter_logits_fn)  # fail early on a bad filter name
        unbatched = prompts.ndim == 1
        out = prompts[None] if unbatched else prompts
        if out.ndim != 2 or out.shape[1] < 1:
            raise ValueError(
                f"prompts must have shape (batch, len >= 1), got {tuple(prompts.shape)}"
            )
        prompt_len = out.shape[1]
        was_training = self.net.training
        self.net.eval()
        for _ in range(seq_len):
            logits = self.net(out[:, -self.max_seq_len :], **kwargs)[:, -1]
            next_token = sample_next_token(logits, temperature, filter_logits_fn, filter_kwargs)
            out = torch.cat((out, next_token[:, None]), dim=-1)
            if eos_token is not None and (out[:, prompt_len:] == eos_token).any(-1).all():
                break
        self.net.train(was_training)
        generated = out[:, prompt_len:]
        if eos_token is not None:
            generated = pad_after_eos(generated, eos_token, self.pad_value)
            generated = F.pad(generated, (0, seq_len - generated.shape[1]), value=self.pad_value)
        return generated[0] if unbatched else generated
