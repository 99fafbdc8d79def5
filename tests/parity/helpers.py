"""Shared pieces of the parity tests against ``transformers`` (issue 11).

Every reference model is built from a tiny random config, offline, in float64 and eval mode, and
**every parameter is perturbed first**: the reference initialises biases to zero and norm gains
to one, which would hide a missing bias or gain in the converter.
"""

from __future__ import annotations

import torch

TOLERANCE = 1e-10  # max abs difference of float64 logits


@torch.no_grad()
def perturb(model: torch.nn.Module, seed: int = 0, std: float = 0.2) -> None:
    """Add noise to every parameter (and so to every bias and norm gain)."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in model.parameters():
        noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
        parameter.add_(noise.to(parameter.dtype) * std)


def max_difference(ours: torch.Tensor, theirs: torch.Tensor, mask=None) -> float:
    """Max abs difference, only over the positions where ``mask`` (b, n) is True."""
    if ours.shape != theirs.shape:
        raise AssertionError(f"shapes differ: {tuple(ours.shape)} vs {tuple(theirs.shape)}")
    difference = (ours - theirs).abs()
    if mask is not None:
        difference = difference[mask]
    return difference.max().item()


def report(family: str, what: str, value: float, limit: float = TOLERANCE) -> None:
    """Print the measured maximum (shown with ``pytest -s``) and assert it."""
    print(f"\n[parity] {family} {what}: max abs diff {value:.3e} (limit {limit:.0e})")
    assert value <= limit, f"{family} {what}: max abs diff {value:.3e} > {limit:.0e}"


def padded_batch(vocab: int, lengths: list[int], seed: int = 1, pad: int = 0):
    """Right-padded token ids (b, n) and their mask (True = token)."""
    generator = torch.Generator().manual_seed(seed)
    n = max(lengths)
    ids = torch.randint(1, vocab, (len(lengths), n), generator=generator)
    mask = torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]
    return ids.masked_fill(~mask, pad), mask
