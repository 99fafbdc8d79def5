"""The loop's small parts: the learning-rate schedule, weight-decay groups, the progress bar."""

from __future__ import annotations

import io
import math

import pytest
import torch

from x_transformers import Decoder, TransformerWrapper
from x_transformers.cli.optim import learning_rate, make_optimizer
from x_transformers.cli.progress import Progress, format_duration, format_rate
from x_transformers.cli.settings import TrainSettings


def test_schedule_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    settings = TrainSettings(steps=110, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    rates = [learning_rate(step, settings) for step in range(110)]
    assert rates[:10] == pytest.approx([1e-4 * (i + 1) for i in range(10)])
    assert rates[10] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-4)
    assert learning_rate(10 + 49.5, settings) == pytest.approx(5.5e-4)  # half way: the mean
    assert rates[59] == pytest.approx(1e-4 + 0.45e-3 * (1 + math.cos(math.pi * 49 / 99)))
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))


def test_no_warmup_starts_at_the_peak():
    settings = TrainSettings(steps=5, lr=2e-3, warmup_steps=0, min_lr_ratio=0.0)
    assert [learning_rate(s, settings) for s in (0, 4)] == pytest.approx([2e-3, 0.0])


def test_weight_decay_applies_to_matrices_only():
    net = TransformerWrapper(
        num_tokens=256, max_seq_len=8, attn_layers=Decoder(dim=16, depth=1, heads=2)
    )
    optimizer = make_optimizer(net, TrainSettings(weight_decay=0.3))
    decayed, kept = optimizer.param_groups
    assert decayed["weight_decay"] == 0.3 and kept["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decayed["params"]) and all(p.ndim < 2 for p in kept["params"])
    assert len(decayed["params"]) + len(kept["params"]) == len(list(net.parameters()))
    assert net.token_emb.weight in [p for p in decayed["params"]]


@pytest.mark.parametrize(
    "seconds, text", [(0, "0:00"), (7.4, "0:07"), (750, "12:30"), (10935, "3:02:15")]
)
def test_durations(seconds, text):
    assert format_duration(seconds) == text


def test_rates():
    assert [format_rate(r) for r in (950, 14_200, 3_400_000)] == ["950", "14.2k", "3.4M"]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_log_lines_without_a_terminal_show_loss_throughput_and_time_left():
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(10, stream=stream, interactive=False, log_every=5, clock=clock)
    for step in range(1, 11):
        clock.now += 2.0
        progress.update(step, loss=1.5, lr=1e-3, tokens=1000, seconds=2.0)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "step 5/10  loss 1.5000  lr 1.0e-03  500 tok/s  0:10 < 0:10",
        "step 10/10  loss 1.5000  lr 1.0e-03  500 tok/s  0:20 < 0:00",
    ]


def test_a_terminal_gets_one_redrawn_bar_and_messages_above_it():
    stream = io.StringIO()
    progress = Progress(4, start=2, stream=stream, interactive=True, width=4, clock=FakeClock())
    progress.update(3, loss=2.0, lr=1e-3, tokens=10, seconds=1.0)
    progress.write("val loss 1.9")
    progress.update(4, loss=1.0, lr=1e-3, tokens=10, seconds=1.0)
    progress.close()
    text = stream.getvalue()
    assert text.count("\r\033[K") == 3 and text.endswith("\n")
    assert "step 3/4  [###.]" in text and "\r\033[Kval loss 1.9\n" in text
    assert "step 4/4  [####]  loss 1.0000" in text and "0:00 < 0:00" in text


def test_time_left_counts_only_this_sessions_steps():
    progress = Progress(100, start=90, stream=io.StringIO(), interactive=False, clock=FakeClock())
    progress.update(91, loss=1.0, lr=1.0, tokens=1, seconds=3.0)
    assert progress.line(1.0, 1.0).endswith("< 0:27")  # 9 steps left at 3 s each


def test_samples_are_made_safe_for_a_terminal():
    from x_transformers.cli.evaluate import decode, printable

    text = decode(torch.tensor([104, 105, 10, 9, 27, 91, 50, 74, 0xC3, 0xA9, 0xFF, 13]))
    assert printable(text) == "hi\n\t\ufffd[2Jé\ufffd\ufffd"
