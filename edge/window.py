"""Turns per-face predictions and their tracks into one anonymous record per time window.

Only counts leave this module: no pixels, crops, boxes, embeddings or track numbers. Windows are aligned to
multiples of their length in UTC, so every camera of a venue closes its windows at the same instants.

People, not face detections (docs/architecture.md, "Tracking people"):

- A track counts as a person in a window when it has at least ``min_track_frames`` frames in that window, its
  face was at least ``min_person_px`` tall in some detection and it was seen at a readable size (the tracker's
  smoothed height >= its ``min_px``) for ``min_seen_s`` in one stretch (the size the classifier reads, long
  enough not to be a flicker; smaller or briefer faces still count as face detections).
  ``people`` is the number of such tracks; ``entered`` those counted for the first time (a person lingering
  over several windows is in ``people`` of each and in ``entered`` of the first only).
- Each person votes once per window: the argmax of the mean of the track's class probabilities over its frames
  in that window (each frame's probabilities already averaged with the mirror image by the classifier).
- The privacy rule is on people, counted conservatively: a window withholds every emotion figure (counts,
  votes, mean confidence) unless some analysed frame held at least ``min_people`` faces of tracks counted in
  this window. One person is at most one face in a frame, so a person whose track breaks into many (a flicker,
  a jump) still counts as one here. ``min_faces``, the old rule, is kept as an extra floor on face detections.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from emo7ion.core import emotions, messages
from emo7ion.core.runtime import Prediction
from emo7ion.edge.track import Track

SHORTEST_WINDOW_S = 1.0
"""No window is shorter, not even the first (which starts when the agent starts) or the last (which ends when it
stops): the aggregator refuses windows under half of this (``min_window_s``) as stacked-window attacks, so a
sliver is joined to the window after it, or, at a stop, stretched to this length (at most 1 s past the last frame,
far inside the aggregator's clock skew)."""


def window_bounds(now: float, length: float, anchor: float = 0.0) -> tuple[float, float]:
    """The [start, end) of the aligned window holding ``now`` (epoch seconds), on the grid of multiples of ``length``
    from ``anchor``: the epoch for a live camera, a recording's first frame. A moment within a millionth of a
    window of the next boundary is at that boundary (epoch seconds carry rounding errors of ~0.2 us)."""
    start = anchor + math.floor(round((now - anchor) / length, 6)) * length
    return start, start + length


@dataclass(eq=False)
class _Presence:
    """One track within the current window: its frames here and the sum of their class probabilities."""

    track: Track
    frames: int = 0
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros(emotions.NUM_CLASSES))


def _probabilities(prediction: Prediction) -> np.ndarray:
    """The prediction's class probabilities; a prediction made without them votes for its label alone."""
    if prediction.probabilities is not None:
        return np.asarray(prediction.probabilities, np.float64)
    one_hot = np.zeros(emotions.NUM_CLASSES)
    one_hot[emotions.LABELS.index(prediction.label)] = 1.0
    return one_hot


class WindowCounter:
    def __init__(self, venue: str, camera: str, length_s: float, min_people: int, model: dict[str, str],
                 zone: str | None = None, now: float = 0.0, min_track_frames: int = 3, min_faces: int = 0,
                 min_person_px: float = 0.0, min_seen_s: float = 0.0):
        self.venue, self.camera, self.zone = venue, camera, zone or None
        self.length_s = length_s
        self.min_people = min_people
        self.min_track_frames = max(1, min_track_frames)
        self.min_person_px = min_person_px
        self.min_seen_s = min_seen_s
        self.min_faces = min_faces
        self.model = dict(model)
        self.anchor = 0.0  # the grid of window boundaries: the epoch (see restart for recordings)
        self._begin(now)  # the first window starts when observation starts, and ends on the grid

    def _begin(self, start: float) -> None:
        self.start = start
        self.end = window_bounds(start, self.length_s, self.anchor)[1]
        if self.end - start < SHORTEST_WINDOW_S:  # a sliver before the grid's next boundary joins that window
            self.end += self.length_s
        self.frames = 0
        self.counts = dict.fromkeys(emotions.LABELS, 0)
        self._confidence = 0.0
        self._present: dict[int, _Presence] = {}
        self._frame_tracks: list[list[int]] = []  # per analysed frame, the track numbers in it (in memory only)
        self._ended: list[Track] = []

    @property
    def faces(self) -> int:
        return sum(self.counts.values())

    def add_frame(self, predictions: Iterable[Prediction], tracks: Sequence[Track] | None = None,
                  ended: Iterable[Track] = ()) -> None:
        """One analysed frame: its faces' predictions, the track of each (None: faces not tracked, which count
        as face detections but never as people) and the tracks that ended at this frame."""
        predictions = list(predictions)
        self.frames += 1
        numbers = []
        for index, prediction in enumerate(predictions):
            self.counts[prediction.label] += 1
            self._confidence += prediction.confidence
            if tracks is not None:
                track = tracks[index]
                presence = self._present.get(track.number)
                if presence is None:
                    presence = self._present[track.number] = _Presence(track)
                presence.frames += 1
                presence.probabilities += _probabilities(prediction)
                numbers.append(track.number)
        self._frame_tracks.append(numbers)
        self.end_tracks(ended)

    def end_tracks(self, ended: Iterable[Track]) -> None:
        """Tracks that ended during this window (their dwell is reported here if they ever counted)."""
        self._ended.extend(ended)

    def restart(self, start: float, anchor: float) -> None:
        """Begin afresh at ``start``, windows counted from ``anchor``: a recording's first frame, so that a 20 s
        clip is one 60 s window wherever its first frame falls on the clock."""
        self.anchor = anchor
        self._begin(start)

    def due(self, now: float) -> bool:
        return now >= self.end

    def people_in_one_frame(self, counted: set[int]) -> int:
        """The conservative people count: the most counted tracks seen together in one analysed frame."""
        return max((sum(number in counted for number in frame) for frame in self._frame_tracks), default=0)

    def close(self, seq: int, now: float, early: bool = False) -> messages.Window:
        """The record of the current window, then start the next one. ``early`` ends it at ``now``
        (shutdown); after a stall longer than a window the next one starts at ``now``, not in the past."""
        end = max(min(now, self.end), self.start + SHORTEST_WINDOW_S) if early else self.end
        persons = [p for p in self._present.values()
                   if p.frames >= self.min_track_frames and p.track.tallest >= self.min_person_px
                   and p.track.readable_s >= self.min_seen_s - 1e-9]
        counted = {p.track.number for p in persons}
        entered = sum(not p.track.counted for p in persons)
        for person in persons:
            person.track.counted = True
        left = [track for track in self._ended if track.counted]
        faces = self.faces
        shared = self.people_in_one_frame(counted) >= self.min_people and faces >= self.min_faces
        votes = Counter(emotions.LABELS[int(np.argmax(p.probabilities))] for p in persons)
        record = messages.Window(
            venue=self.venue, camera=self.camera, zone=self.zone, seq=seq,
            start=dt.datetime.fromtimestamp(self.start, dt.UTC), end=dt.datetime.fromtimestamp(end, dt.UTC),
            frames=self.frames, faces=faces, counts=dict(self.counts) if shared else None,
            mean_confidence=(self._confidence / faces) if shared and faces else None, model=self.model,
            people=len(persons), entered=entered,
            votes={label: votes[label] for label in emotions.LABELS} if shared else None,
            in_view=faces / self.frames if self.frames else 0.0,
            dwell_s=statistics.median(t.seconds_in_view for t in left) if left else None, ended=len(left))
        self._begin(end if now - end < self.length_s else now)
        return record
