"""Stopping cleanly on Ctrl-C (SIGINT) or SIGTERM (a scheduler's time limit): the loop finishes
the current step, writes a checkpoint and exits; a second signal interrupts at once."""

from __future__ import annotations

import signal
import threading


class StopSignals:
    """SIGINT / SIGTERM request a checkpoint and a clean exit at the end of the current step; a
    second signal interrupts at once (the atomic write keeps the previous checkpoint intact)."""

    def __init__(self):
        self.received: signal.Signals | None = None
        self.previous = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            self.restore()
            raise KeyboardInterrupt
        self.received = signal.Signals(signum)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}
