"""Length extrapolation: bits per byte at every position of windows 1x, 2x, 4x the training length.

A model trained on windows of ``L`` bytes is scored on validation windows of ``m * L`` bytes for
each multiple ``m``. The windows of every multiple tile the same stretches of text (each of the
longest windows is cut into ``max / m`` pieces), so all multiples predict exactly the same bytes and
differ only in how much context precedes them. Positional schemes that extrapolate keep the loss
flat (or falling) past position ``L``; those that do not, rise there ("Train Short, Test Long",
2108.12409).

Shape letters: b windows, n positions, v vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import eval_windows, spread
from ..errors import DataError
from ..evaluate import LN2


def window_starts(num_tokens: int, length: int, count: int) -> list[int]:
    """Starts of ``count`` windows of ``length + 1`` bytes spread evenly over ``num_tokens``."""
    full = [start for start, size in eval_windows(num_tokens, length) if size == length + 1]
    if not full:
        raise DataError(
            f"the validation split ({num_tokens} bytes) is shorter than one extrapolation window "
            f"of {length + 1} bytes; raise data.val_fraction or use more data"
        )
    return spread(full, count)


@torch.no_grad()
def window_bits(net, tokens: Tensor, starts: list[int], length: int, batch_size: int, device):
    """Bits of every prediction in the windows at ``starts``: a (windows, length) tensor whose
    column p predicts byte p + 1 of the window from the p + 1 bytes before it."""
    was_training = net.training
    net.eval()
    rows = []
    for i in range(0, len(starts), batch_size):
        chunk = torch.tensor(starts[i : i + batch_size])
        index = chunk[:, None] + torch.arange(length + 1)  # (b, n + 1)
        batch = tokens[index].long().to(device)
        logits = net(batch[:, :-1]).float()  # (b, n, v)
        losses = F.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")  # (b, n)
        rows.append(losses.double().cpu() / LN2)
    net.train(was_training)
    return torch.cat(rows)


def evaluate_extrapolation(
    net,
    tokens: Tensor,
    seq_len: int,
    multiples: tuple[int, ...],
    count: int,
    device,
    batch_size: int = 8,
) -> dict:
    """Bits per byte of ``net`` (a ``TransformerWrapper``) on ``count`` of the longest windows of
    ``tokens``, scored at each multiple of ``seq_len``::

        {"seq_len", "multiples", "bpb": {m: mean}, "positions": {m: [bits per position]}}

    ``positions[m][p]`` is the mean over windows of the bits of byte p + 1 of the longest window,
    predicted with the context that multiple ``m`` gives it (its piece of ``m * seq_len`` bytes),
    so ``positions[m][p] - positions[1][p]`` is what the longer context changed for the same
    bytes (zero for the first ``seq_len`` positions, which have the same context everywhere)."""
    longest = multiples[-1] * seq_len
    starts = window_starts(len(tokens), longest, count)
    report = {"seq_len": seq_len, "multiples": list(multiples), "bpb": {}, "positions": {}}
    for multiple in multiples:
        length, pieces_per_window = multiple * seq_len, multiples[-1] // multiple
        pieces = [s + j * length for s in starts for j in range(pieces_per_window)]
        bits = window_bits(net, tokens, pieces, length, batch_size, device)  # (w * k, length)
        by_position = bits.reshape(len(starts), longest).mean(dim=0)  # pieces back in order
        report["bpb"][str(multiple)] = float(by_position.mean())
        report["positions"][str(multiple)] = by_position.tolist()
    return report
