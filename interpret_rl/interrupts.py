"""Turn SIGINT / SIGTERM during training into "finish this update, save, exit 130 / 143".

A signal only sets a flag; the trainer checks it between updates, so the checkpoint it writes is
a consistent one (weights, optimizer state and step counter of the same completed update).
A second signal while saving is deferred too: the save is atomic and short.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving; ``exit_code`` is the shell convention 128 + signal."""

    def __init__(self, signum: int, steps: int):
        self.signum, self.steps = signum, steps
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {steps:,}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopFlag:
    signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


@contextmanager
def stop_on_signals(signals=(signal.SIGINT, signal.SIGTERM)) -> Iterator[StopFlag]:
    """Within the block, the listed signals set the returned flag instead of killing the process."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signal handlers can only be installed from the main thread
        return

    def handler(signum, frame):
        flag.signum = signum

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield flag
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
