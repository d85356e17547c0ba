"""How a service's main thread turns SIGTERM/SIGINT into its one stop event, and waits on it.

Two traps of ``signal.signal(s, lambda *_: stop.set())`` + ``stop.wait()``, both seen as an aggregator that
ignored Ctrl-C in CI: (1) Python runs a signal's handler in the main thread only when that thread next runs
bytecode, and a signal the kernel hands to another thread does not wake a main thread blocked in
``Event.wait()`` with no timeout; (2) ``Event.set()`` inside a handler deadlocks when the signal lands while
the main thread holds that event's lock (entering or leaving ``wait``). So the handler hands the ``set`` to a
short-lived thread, and the main thread waits in slices.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

log = logging.getLogger(__name__)

SLICE_S = 0.25
"""The longest a pending signal waits for the main thread to run its handler."""


def stop_on_signals(stop: threading.Event, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
                    message: str = "") -> None:
    """Set ``stop`` when one of ``signals`` arrives (call from the main thread); logs ``message`` % signum."""

    def handler(signum, _frame) -> None:
        if message:
            log.info(message, signum)
        threading.Thread(target=stop.set, name="signal-stop", daemon=True).start()

    for signum in signals:
        signal.signal(signum, handler)


def wait(stop: threading.Event, timeout: float | None = None) -> bool:
    """``stop.wait(timeout)`` in slices of :data:`SLICE_S`, so signal handlers run on time; True if set."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = SLICE_S if deadline is None else min(SLICE_S, deadline - time.monotonic())
        if left <= 0:
            return stop.is_set()
        if stop.wait(left):
            return True
