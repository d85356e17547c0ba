"""Which venues changed since a reader last looked: lets the mood publisher and the live dashboard
stream wake on new data instead of polling the database."""

from __future__ import annotations

import threading
from collections.abc import Iterable


class Changes:
    def __init__(self):
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}

    def bump(self, venues: Iterable[str]) -> None:
        with self._lock:
            for venue in venues:
                self._versions[venue] = self._versions.get(venue, 0) + 1

    def version(self, venue: str) -> int:
        with self._lock:
            return self._versions.get(venue, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._versions)
