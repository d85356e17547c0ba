"""Log lines a hostile or broken camera can trigger at wire speed, limited per kind: the first few of
each interval are written, the rest only counted (in /metrics) and summed up in the next line."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class RateLimitedLog:
    """At most ``burst`` lines per key per ``interval_s``; ``suppressed`` counts the lines left out."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0, burst: int = 5,
                 clock: Callable[[], float] = time.monotonic):
        self.logger, self.interval_s, self.burst, self._clock = logger, interval_s, burst, clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int, int]] = {}  # key -> (interval start, written, left out)
        self.suppressed = 0

    def warning(self, key: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless ``key`` is over its budget; whether it was written."""
        now = self._clock()
        with self._lock:
            started, written, left_out = self._windows.get(key, (now, 0, 0))
            if now - started >= self.interval_s:
                started, written, left_out, earlier = now, 0, 0, left_out
            else:
                earlier = 0
            if written >= self.burst:
                self._windows[key] = (started, written, left_out + 1)
                self.suppressed += 1
                return False
            self._windows[key] = (started, written + 1, left_out)
        if earlier:
            message += " (%d similar line(s) left out in the previous %.0f s)"
            args = (*args, earlier, self.interval_s)
        self.logger.warning(message, *args)
        return True
