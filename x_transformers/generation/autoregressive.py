"""``AutoregressiveWrapper``: next-token loss and sampling for a token model.

Shape letters: b batch, n sequence, v vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention.masks import combine_masks
from ..hub.mixin import PretrainedMixin
from ..layers.validation import check_mask
from .beam_search import beam_search
from .compiled import CompiledSteps, generate_compiled
from .decode import DecodeSession, eval_mode, left_pad_prompts, open_session
from .interface import decoding_spec
from .loop import check_eos_and_pad, check_num_new, make_sampler, sample_tokens


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
    return keep.float().scatter(1, hidden, 0.0) > 0  # numeric scatter: Paddle has no bool one


class AutoregressiveWrapper(PretrainedMixin, nn.Module):
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
        spec = decoding_spec(net, "AutoregressiveWrapper")
        if not spec.causal:
            raise ValueError(
                "AutoregressiveWrapper needs a causal model (attn_layers=Decoder(...))"
            )
        self.net = net
        self.max_seq_len = spec.max_seq_len
        self.ignore_index, self.pad_value, self.mask_prob = ignore_index, pad_value, mask_prob
        # generate(compile=True): compiled decode steps, reused across calls (not a submodule)
        self.compiled_steps = CompiledSteps()

    def forward(
        self, x: Tensor, mask: Tensor | None = None, return_outputs: bool = False, **kwargs
    ):
        """x (b, n) -> mean cross-entropy of predicting x[:, 1:] from x[:, :-1]. ``mask`` (b, n),
        bool, as for the model's forward, marks real tokens (True) versus padding; padded
        targets do not count. When no target counts (e.g. an all-False mask) the loss is 0, as
        for :class:`ContinuousAutoregressiveWrapper`, not NaN."""
        if x.ndim != 2 or x.shape[1] < 2:
            raise ValueError(f"need token ids of shape (batch, seq_len >= 2), got {tuple(x.shape)}")
        check_mask(x, mask, "mask")
        inp, target = x[:, :-1], x[:, 1:]
        inp_mask = None
        if mask is not None:
            inp_mask = mask[:, :-1]
            target = target.masked_fill(~mask[:, 1:], self.ignore_index)
        if self.training and self.mask_prob > 0:
            fcm = forgetful_causal_mask(*inp.shape, self.mask_prob, inp.device)
            inp_mask = combine_masks(inp_mask, fcm)
        logits = self.net(inp, mask=inp_mask, **kwargs)
        # (b * n, v) logits: the class axis is last in torch and Paddle alike
        loss = F.cross_entropy(
            logits.flatten(0, 1), target.flatten(), ignore_index=self.ignore_index, reduction="sum"
        )
        loss = loss / (target != self.ignore_index).sum().clamp(min=1)  # 0 when nothing counts
        return (loss, logits) if return_outputs else loss

    @torch.no_grad()
    def generate(
        self,
        prompts: Tensor | Sequence[Tensor],
        seq_len: int,
        eos_token: int | None = None,
        temperature: float = 1.0,
        filter_logits_fn: str | Callable[..., Tensor] | None = "top_k",
        filter_kwargs: dict | None = None,
        cache_kv: bool = True,
        prompt_lens: Tensor | None = None,
        cache_kind: str = "dynamic",
        compile: bool | str = False,
        generator: torch.Generator | None = None,
        **kwargs,
    ) -> Tensor:
        """Sample ``seq_len`` new tokens after ``prompts``; returns only the new tokens,
        (b, seq_len), or (seq_len,) for a 1-D prompt. ``seq_len=0`` gives an empty (b, 0)
        result; a negative ``seq_len``, a NaN ``temperature`` or an empty prompt raise
        ``ValueError``.

        Args:
            prompts: (n,), (b, n), a list of 1-D prompts of different lengths, or a left-padded
                (b, n) batch with ``prompt_lens`` (b,) real tokens per row.
            eos_token: a row stops at its first ``eos_token``; ``pad_value`` fills the rest.
            temperature: 0 is greedy; otherwise the filtered logits are sampled.
            filter_logits_fn: ``'top_k'``, ``'top_p'``, ``'min_p'``, a callable or None, with
                ``filter_kwargs`` (e.g. ``{'k': 10}``, ``{'thres': 0.9}``, ``{'min_p': 0.1}``).
            cache_kv: reuse keys / values of past positions (a feature that cannot be cached
                makes it recompute, with a warning naming the feature).
            cache_kind: ``'dynamic'`` (grows; slides past ``max_seq_len`` when positions are
                relative) or ``'static'`` (preallocated; compile-friendly steps).
            compile: decode every new token with one compiled step on a static cache
                (``True``: the inductor backend, with the weights frozen into the step on the
                CPU until they change; a string names a ``torch.compile`` backend, used as
                given); see :mod:`x_transformers.generation.compiled`. What
                cannot run compiled decodes eagerly, with a warning naming the reason.
            generator: the random generator of the sampling noise (same tokens compiled or not).
            **kwargs: forward keywords for every step (``context``, ``context_mask``, ...).
        """
        sample = make_sampler(temperature, filter_logits_fn, filter_kwargs, generator)
        seq_len = check_num_new(seq_len)
        check_eos_and_pad(eos_token, self.pad_value, None)
        prompt = left_pad_prompts(prompts, prompt_lens, self.pad_value)
        if seq_len == 0:
            return _empty(prompt)
        with eval_mode(self.net):
            if compile is not False and cache_kv:
                out = generate_compiled(
                    self.net,
                    self.compiled_steps,
                    prompt,
                    seq_len,
                    compile=compile,
                    temperature=temperature,
                    filter_logits_fn=filter_logits_fn,
                    filter_kwargs=filter_kwargs,
                    eos_token=eos_token,
                    pad_value=self.pad_value,
                    generator=generator,
                    layer_inputs=kwargs,
                )
                if out is not None:  # None: it cannot run compiled (a warning said why)
                    return out[0] if prompt.unbatched else out
            session = self._session(prompt, seq_len, cache_kv, cache_kind, kwargs, "generate")
            logits = session.prefill(prompt.tokens, prompt.mask, prompt.start_positions)
            out = sample_tokens(session, logits, seq_len, sample, eos_token, self.pad_value)
        return out[0] if prompt.unbatched else out

    @torch.no_grad()
    def beam_search(
        self,
        prompts: Tensor | Sequence[Tensor],
        seq_len: int,
        beams: int = 4,
        eos_token: int | None = None,
        return_beams_and_scores: bool = False,
        cache_kv: bool = True,
        prompt_lens: Tensor | None = None,
        **kwargs,
    ):
        """The most likely continuation of ``seq_len`` tokens found with ``beams`` beams
        (sum of log-probabilities); (b, seq_len), or (seq_len,) for a 1-D prompt. With
        ``return_beams_and_scores=True``: every beam (b, beams, seq_len) and its score
        (b, beams), best first. Prompts are given as to :meth:`generate`."""
        seq_len = check_num_new(seq_len)
        check_eos_and_pad(eos_token, self.pad_value, None)
        prompt = left_pad_prompts(prompts, prompt_lens, self.pad_value)
        session = self._session(prompt, seq_len, cache_kv, "dynamic", kwargs, "beam_search")
        with eval_mode(self.net):
            logits = session.prefill(prompt.tokens, prompt.mask, prompt.start_positions)
            tokens, scores = beam_search(
                session, logits, seq_len, beams, eos_token=eos_token, pad_value=self.pad_value
            )
        if return_beams_and_scores:
            return (tokens[0], scores[0]) if prompt.unbatched else (tokens, scores)
        return tokens[0, 0] if prompt.unbatched else tokens[:, 0]

    def _session(self, prompt, seq_len, cache_kv, cache_kind, kwargs, where) -> DecodeSession:
        spec = decoding_spec(self.net, "AutoregressiveWrapper")
        return open_session(
            self.net,
            spec,
            prompt.tokens.shape[1],
            seq_len,
            cache_kv=cache_kv,
            cache_kind=cache_kind,
            layer_inputs=kwargs,
            where=where,
        )


def _empty(prompt) -> Tensor:
    """The result of generating 0 tokens: (b, 0), or (0,) for a 1-D prompt."""
    empty = prompt.tokens.new_empty(prompt.tokens.shape[0], 0, dtype=torch.long)
    return empty[0] if prompt.unbatched else empty
