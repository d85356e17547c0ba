"""SIGTERM/SIGINT to the one stop event: a handler that cannot deadlock, a wait that lets handlers run.

An aggregator ignored Ctrl-C once in CI (test_actionable_errors: no 'stopping' line in 60 s) with the old
``signal.signal(s, lambda *_: stop.set())`` + ``stop.wait()``.
"""

import os
import signal
import threading
import time

import pytest

from emo7ion.core.service import stopping


@pytest.fixture
def restore_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_a_signal_landing_while_the_event_lock_is_held_does_not_deadlock(restore_handlers):
    """The main thread holds the event's lock between entering ``wait`` and sleeping: a handler that calls
    ``Event.set()`` right there waits for a lock its own thread holds, forever."""
    stop = threading.Event()
    stopping.stop_on_signals(stop)
    handler = signal.getsignal(signal.SIGTERM)
    returned = threading.Event()

    def signal_inside_the_lock() -> None:
        with stop._cond:  # noqa: SLF001  where Event.wait is when the signal lands
            handler(signal.SIGTERM, None)
            returned.set()

    thread = threading.Thread(target=signal_inside_the_lock, daemon=True)
    thread.start()
    assert returned.wait(2.0), "the handler blocked on the event's own lock"
    assert stopping.wait(stop, 2.0)


def test_a_real_signal_sets_the_event_and_ends_the_wait(restore_handlers):
    stop = threading.Event()
    stopping.stop_on_signals(stop)
    busy = threading.Thread(target=lambda: time.sleep(0.3), daemon=True)  # other threads alive, as in a service
    busy.start()
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    started = time.monotonic()
    assert stopping.wait(stop, 10.0)
    assert time.monotonic() - started < 2.0


def test_wait_times_out_unset():
    stop = threading.Event()
    started = time.monotonic()
    assert stopping.wait(stop, 0.6) is False
    assert 0.55 <= time.monotonic() - started < 1.5
