"""Signals: a first SIGINT/SIGTERM asks the loop to stop, a second stops at once, the old handlers come back."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from fastadapt.training.signals import StopRequest


def _previous(signum: int, frame: object) -> None:
    raise AssertionError("not the stop request's handler")


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    originals = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in originals.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("previous", [_previous, signal.SIG_IGN, signal.SIG_DFL], ids=["custom", "ignored", "default"])
@pytest.mark.usefixtures("restore_handlers")
def test_the_handlers_found_are_put_back(previous: object) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, previous)  # type: ignore[arg-type]
    stop = StopRequest()
    with stop.installed():
        assert signal.getsignal(signal.SIGINT) == stop._handle
    assert signal.getsignal(signal.SIGINT) is previous and signal.getsignal(signal.SIGTERM) is previous


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.usefixtures("restore_handlers")
def test_a_first_signal_asks_a_second_interrupts(signum: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup or `trap '' INT`: the request still works
    stop = StopRequest()
    with stop.installed():
        os.kill(os.getpid(), signum)
        assert stop.requested and stop.signal == signum
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_outside_the_main_thread_nothing_is_installed() -> None:
    seen: list[object] = []
    stop = StopRequest()

    def body() -> None:
        with stop.installed():
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [before] and not stop.requested
