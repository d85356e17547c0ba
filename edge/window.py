"""Turns per-face predictions into one anonymous record per time window.

Only counts leave this module: no pixels, crops, boxes or embeddings. Windows are aligned to
multiples of their length in UTC, so every camera of a venue closes its windows at the same instants,
and a window with fewer than ``min_faces`` faces withholds its counts: no single person's expression
can be read off a message.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

from emo7ion.core import emotions, messages
from emo7ion.core.runtime import Prediction


def window_bounds(now: float, length: float) -> tuple[float, float]:
    """The [start, end) of the aligned window holding ``now`` (epoch seconds)."""
    start = math.floor(now / length) * length
    return start, start + length


class WindowCounter:
    def __init__(self, venue: str, camera: str, length_s: float, min_faces: int, model: dict[str, str],
                 zone: str | None = None, now: float = 0.0):
        self.venue, self.camera, self.zone = venue, camera, zone or None
        self.length_s = length_s
        self.min_faces = min_faces
        self.model = dict(model)
        self._begin(now)  # the first window starts when observation starts, and ends on the grid

    def _begin(self, start: float) -> None:
        self.start = start
        self.end = window_bounds(start, self.length_s)[1]
        self.frames = 0
        self.counts = dict.fromkeys(emotions.LABELS, 0)
        self._confidence = 0.0

    @property
    def faces(self) -> int:
        return sum(self.counts.values())

    def add_frame(self, predictions: Iterable[Prediction]) -> None:
        self.frames += 1
        for prediction in predictions:
            self.counts[prediction.label] += 1
            self._confidence += prediction.confidence

    def due(self, now: float) -> bool:
        return now >= self.end

    def close(self, seq: int, now: float, early: bool = False) -> messages.Window:
        """The record of the current window, then start the next one. ``early`` ends it at ``now``
        (shutdown); after a stall longer than a window the next one starts at ``now``, not in the past."""
        end = min(now, self.end) if early else self.end
        faces = self.faces
        shared = faces >= self.min_faces
        record = messages.Window(
            venue=self.venue, camera=self.camera, zone=self.zone, seq=seq,
            start=dt.datetime.fromtimestamp(self.start, dt.UTC), end=dt.datetime.fromtimestamp(end, dt.UTC),
            frames=self.frames, faces=faces, counts=dict(self.counts) if shared else None,
            mean_confidence=(self._confidence / faces) if shared and faces else None, model=self.model)
        self._begin(end if now - end < self.length_s else now)
        return record
