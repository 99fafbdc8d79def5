"""Bits per byte and text samples.

With byte-level tokens the mean next-token cross-entropy in nats is converted to bits per byte by
dividing by ln 2 (the metric of the enwik8 / text8 character-level benchmarks).

Shape letters: b batch, w window length.
"""

from __future__ import annotations

import contextlib
import math
import unicodedata
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from .data import BYTE_VOCAB_SIZE

LN2 = math.log(2)


@dataclass
class LossSum:
    """A running sum of per-token losses (nats) and the number of predicted tokens."""

    nats: float = 0.0
    count: int = 0

    @property
    def mean(self) -> float:
        return self.nats / max(self.count, 1)

    @property
    def bits_per_byte(self) -> float:
        return self.mean / LN2


def _grouped(windows: list[tuple[int, int]], batch_size: int):
    """Batches of windows of equal length (only the last window of a text is shorter)."""
    by_length: dict[int, list[int]] = {}
    for start, length in windows:
        by_length.setdefault(length, []).append(start)
    for length, starts in by_length.items():
        for i in range(0, len(starts), batch_size):
            yield torch.tensor(starts[i : i + batch_size]), length


@torch.no_grad()
def sum_losses(model, tokens: Tensor, windows, batch_size: int, device, autocast=None) -> LossSum:
    """Sum of next-byte losses of ``model`` (an ``AutoregressiveWrapper``) over ``windows`` of
    ``tokens``; the model is put in eval mode for the call and restored after."""
    was_training = model.training
    model.eval()
    total = LossSum()
    for starts, length in _grouped(windows, batch_size):
        index = starts[:, None] + torch.arange(length)  # (b, w)
        batch = tokens[index].long().to(device)
        with autocast or contextlib.nullcontext():
            loss = model(batch)
        predicted = batch.shape[0] * (length - 1)
        total.nats += float(loss) * predicted
        total.count += predicted
    model.train(was_training)
    return total


def encode(text: str) -> Tensor:
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)


def decode(tokens: Tensor) -> str:
    """Byte tokens to text; ids beyond a byte (a vocabulary > 256) become U+FFFD."""
    data = bytes(t if t < BYTE_VOCAB_SIZE else 0xFF for t in tokens.tolist())
    return data.decode("utf-8", errors="replace")


def printable(text: str) -> str:
    """Text safe to show on a terminal: control characters other than newline and tab (an
    untrained model emits escape sequences too) become U+FFFD."""
    return "".join(
        "\ufffd" if unicodedata.category(c) == "Cc" and c not in "\n\t" else c for c in text
    )


@torch.no_grad()
def sample_text(
    model,
    prompt: Tensor,
    length: int,
    seed: int,
    temperature: float = 1.0,
    filter_logits_fn: str | None = "top_k",
    filter_kwargs: dict | None = None,
    num_samples: int = 1,
) -> list[str]:
    """Generate ``num_samples`` continuations of ``prompt`` (n,) with the library's sampler. The
    global RNG is forked, so sampling never changes the training's random stream."""
    device = next(model.parameters()).device
    prompts = prompt.to(device)[None].repeat(num_samples, 1)  # (b, n)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        # the window slides past max_seq_len on purpose; the library's note about it is noise here
        warnings.filterwarnings("ignore", message="generation past max_seq_len")
        torch.manual_seed(seed)
        generated = model.generate(
            prompts,
            length,
            temperature=temperature,
            filter_logits_fn=filter_logits_fn,
            filter_kwargs=filter_kwargs,
        )
    return [decode(row) for row in generated.cpu()]


PROMPT_BYTES = 64  # of the validation split, the prompt of a training sample without one set


def training_sample(model, settings, val_bytes: Tensor, seq_len: int, step: int) -> str:
    """The printable prompt and continuation a training run logs at validation: the configured
    prompt (or the validation split's first bytes), seeded by the run's seed and the step."""
    s = settings
    prompt = encode(s.sample_prompt) if s.sample_prompt else val_bytes[:PROMPT_BYTES]
    prompt = prompt.long()[-seq_len:]
    [text] = sample_text(
        model, prompt, s.sample_length, seed=s.seed + step, temperature=s.sample_temperature
    )
    return printable(decode(prompt) + text)
