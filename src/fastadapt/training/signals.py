"""Stopping on SIGINT and SIGTERM between two meta-updates, so that a signal never tears a run's state."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], Any] | int | None
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Meta-training stopped on a signal after saving its state; ``--resume`` continues it."""


class StopRequest:
    """Turns SIGINT/SIGTERM into a request that the loop honours between meta-updates.

    The step in progress finishes, a checkpoint is written, and only then does the run stop, so a
    signal can never leave half-updated parameters or a checkpoint that does not resume exactly.
    A second signal stops at once.
    """

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle the signals inside the block (main thread only), then put back the handlers found before it."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous: dict[signal.Signals, Handler] = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                if handler is not None:  # None: a handler set outside Python, which cannot be put back from it
                    signal.signal(sig, handler)
