"""Beam search: keep the ``beams`` most likely continuations of each prompt (sum of token
log-probabilities, no length normalisation).

A beam that emitted ``eos_token`` is finished: it keeps its score and continues with
``pad_value`` at no cost, so finished and running beams compete on equal terms. With
``beams=1`` this is greedy decoding.

Shape letters: b batch, k beams, v vocabulary, t generated length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .decode import DecodeSession
from .loop import check_eos_and_pad, check_num_new, pad_to_length


def beam_search(
    session: DecodeSession,
    logits: Tensor,
    seq_len: int,
    beams: int,
    eos_token: int | None = None,
    pad_value: int = 0,
) -> tuple[Tensor, Tensor]:
    """Run beam search from a prefilled ``session`` whose last outputs are ``logits`` (b, v).

    Returns the tokens (b, k, seq_len) and scores (b, k) of the beams, best first.
    """
    if isinstance(beams, bool) or not isinstance(beams, int) or beams < 1:
        raise ValueError(f"'beams' must be an int >= 1, got {beams!r}")
    seq_len = check_num_new(seq_len)
    check_eos_and_pad(eos_token, pad_value, logits.shape[-1])
    batch, vocab = logits.shape
    device = logits.device
    expand = torch.arange(batch, device=device).repeat_interleave(beams)  # (b * k,)
    session.reorder(expand)
    logits = logits[expand]
    # only the first beam of each prompt is alive at the start, so the beams differ
    scores = torch.full((batch, beams), float("-inf"), device=device)
    scores[:, 0] = 0.0
    finished = torch.zeros(batch * beams, dtype=torch.bool, device=device)
    tokens = torch.empty(batch * beams, 0, dtype=torch.long, device=device)
    for step in range(seq_len):
        log_probs = F.log_softmax(logits.float(), -1)  # (b * k, v)
        log_probs = continue_finished_with_pad(log_probs, finished, pad_value)
        candidates = (scores.reshape(-1, 1) + log_probs).reshape(batch, beams * vocab)
        scores, index = candidates.topk(beams, dim=-1)  # (b, k), sorted
        source = (index // vocab + torch.arange(batch, device=device)[:, None] * beams).flatten()
        new_tokens = (index % vocab).flatten()  # (b * k,)
        tokens = torch.cat((tokens[source], new_tokens[:, None]), dim=1)
        finished = finished[source]
        if eos_token is not None:
            finished = finished | (new_tokens == eos_token)
            if bool(finished.all()):
                break
        if step + 1 < seq_len:
            session.reorder(source)
            logits = session.step(new_tokens[:, None])
    tokens = pad_to_length(tokens, seq_len, pad_value)
    return tokens.reshape(batch, beams, seq_len), scores


def continue_finished_with_pad(log_probs: Tensor, finished: Tensor, pad_value: int) -> Tensor:
    """Finished beams may only continue with ``pad_value``, at log-probability 0."""
    if not bool(finished.any()):
        return log_probs
    pad_only = torch.full_like(log_probs[0], float("-inf"))
    pad_only[pad_value] = 0.0
    return torch.where(finished[:, None], pad_only, log_probs)
