"""The training clock: laps, pauses (validation) that do not count, a carried-over start and the budget."""

from __future__ import annotations

import pytest

from fastadapt.training import clock as clock_module
from fastadapt.training.clock import Clock


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """The time the clock reads, set by the test."""
    reading = {"t": 100.0}
    monkeypatch.setattr(clock_module, "perf_counter", lambda: reading["t"])
    return reading


def test_laps_add_up_the_time_since_the_start(now: dict[str, float]) -> None:
    clock = Clock()
    now["t"] += 3
    assert clock.lap() == 3
    now["t"] += 2
    assert clock.elapsed_s == 3  # nothing counted until the next lap
    assert clock.lap() == 5


def test_paused_time_is_not_training_time(now: dict[str, float]) -> None:
    clock = Clock()
    now["t"] += 1
    with clock.paused():
        assert clock.elapsed_s == 1  # the time up to the pause is counted when it starts
        now["t"] += 50
    now["t"] += 2
    assert clock.lap() == 3


def test_a_resumed_clock_continues_and_the_budget_counts_the_running_lap(now: dict[str, float]) -> None:
    clock = Clock(elapsed_s=55.0, budget_s=60.0)
    now["t"] += 4
    assert not clock.out_of_time()
    now["t"] += 1
    assert clock.out_of_time() and clock.elapsed_s == 55.0  # reading the budget counts nothing
    assert not Clock(elapsed_s=1e9).out_of_time()  # no budget, never out of time
