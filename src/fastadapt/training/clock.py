"""The training clock: how long a run has trained, carried over resumes, and its time budget."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from time import perf_counter


class Clock:
    """Training time in seconds: wall time since the clock started plus ``elapsed_s`` from before a resume,
    not counting the time spent in ``paused`` blocks (validation).

    ``elapsed_s`` is the time up to the last ``lap``: what records and checkpoints store. ``budget_s``, if
    given, is the training time after which ``out_of_time`` says to stop.
    """

    def __init__(self, elapsed_s: float = 0.0, budget_s: float | None = None) -> None:
        self.elapsed_s = elapsed_s
        self.budget_s = budget_s
        self._since = perf_counter()

    def lap(self) -> float:
        """Add the time since the last lap to ``elapsed_s`` and return it."""
        now = perf_counter()
        self.elapsed_s += now - self._since
        self._since = now
        return self.elapsed_s

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Count the time up to the block, and none of the block's."""
        self.lap()
        try:
            yield
        finally:
            self._since = perf_counter()

    def out_of_time(self) -> bool:
        """Whether the training time, up to now, has reached the budget (never without one)."""
        return self.budget_s is not None and self.elapsed_s + perf_counter() - self._since >= self.budget_s
