"""A small progress bar: one redrawn line on a terminal, periodic log lines elsewhere (CI, files).

step 120/400 [#######..............]  loss 2.314  lr 2.9e-04  14.2k tok/s  0:32 < 1:05
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
    """``0:07``, ``12:30``, ``3:02:15``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(per_second: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if per_second >= size:
            return f"{per_second / size:.1f}{unit}"
    return f"{per_second:.0f}"


class Progress:
    """Progress of steps ``start .. total``; ``update`` after each step with its loss.

    Throughput and the time left are measured over training steps only (validation and
    checkpoints are excluded), from this process's first step on."""

    def __init__(
        self,
        total: int,
        start: int = 0,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        log_every: int = 10,
        width: int = 24,
        clock=time.monotonic,
    ):
        self.total, self.start, self.step = total, start, start
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.log_every, self.width, self.clock = log_every, width, clock
        self.began = clock()
        self.step_time = 0.0
        self.tokens = 0
        self.drawn = False

    def update(self, step: int, loss: float, lr: float, tokens: int, seconds: float) -> None:
        """Record step ``step`` (1-based count of completed steps) that took ``seconds``."""
        self.step, self.tokens = step, self.tokens + tokens
        self.step_time += seconds
        if self.interactive:
            self._draw(self.line(loss, lr))
        elif step % self.log_every == 0 or step == self.total:
            self.stream.write(self.line(loss, lr) + "\n")
            self.stream.flush()

    def line(self, loss: float, lr: float) -> str:
        done = self.step - self.start
        rate = self.tokens / self.step_time if self.step_time > 0 else 0.0
        left = (self.total - self.step) * self.step_time / done if done else 0.0
        elapsed = self.clock() - self.began
        filled = self.width * self.step // max(self.total, 1)
        bar = f"[{'#' * filled}{'.' * (self.width - filled)}]" if self.interactive else ""
        parts = [f"step {self.step}/{self.total}", bar, f"loss {loss:.4f}", f"lr {lr:.1e}"]
        parts += [
            f"{format_rate(rate)} tok/s",
            f"{format_duration(elapsed)} < {format_duration(left)}",
        ]
        return "  ".join(p for p in parts if p)

    def write(self, text: str) -> None:
        """Print a message above the bar (which is redrawn by the next update)."""
        if self.interactive and self.drawn:
            self.stream.write("\r\033[K")
            self.drawn = False
        self.stream.write(text.rstrip("\n") + "\n")
        self.stream.flush()

    def _draw(self, line: str) -> None:
        self.stream.write("\r\033[K" + line)
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.interactive and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False
