"""Anonymous face tracks: which box of this frame continues which box of the last ones, by overlap alone.

A tracker in the SORT family: each live track predicts where its face is now (constant velocity, an
alpha-beta filter: the steady state of SORT's Kalman filter, without its matrices), the frame's boxes are
matched to the predictions by intersection over union, greedily from the best overlap down; what is left is
matched by the distance of the centres in face sizes (at most ``max_jump``: a small face that moved half its
width between frames overlaps little), and a box still unmatched starts a new track, moving at the median
velocity of the established tracks of the frame (a camera that pans moves every face alike, so a face that
enters the view during a pan is expected to move with the others, not to stand still). A track ends when a
detector frame at least ``max_gap_s`` after its last detection does not find it again.

What a track is made of, and why that is all: a box, a velocity, the times it was first and last detected and
its hit count, and how long its face has been big enough to read (``readable_s``: its height, smoothed against the
detector's jitter of a pixel or two, at least ``min_px`` in one stretch of detections; the window counts a person
by it, the rule of the bench's truth: a face in view at >= 32 px for >= 1 s). No pixels, no crop, no appearance
embedding or face descriptor: a person who leaves the view and comes back is a new track, on purpose.
``Track.number`` is a counter local to this process that only lets the window tell tracks apart in memory; it
is never published, logged or persisted (docs/security.md).

The assignment is greedy rather than Hungarian (docs/architecture.md, "Tracking people"): on crowd frames it
chose the same pairs as ``scipy.optimize.linear_sum_assignment`` and ``lap.lapjv`` while needing neither
(scipy is 113 MB, not in the edge install) and is as fast at the sizes a camera sees. Norfair matches
greedily too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from emo7ion.edge.detect.boxes import iou_matrix

VELOCITY_GAIN = 0.5
"""How much a new measurement of a track's velocity moves the estimate (the filter's beta): smooths the
detector's jitter of a few pixels, follows a walking person within two or three detections."""
HEIGHT_GAIN = 0.5
"""How much a new detection's height moves the track's smoothed height. CenterFace's box height jitters by ~2%
from frame to frame (median 0.7-1 px, 90th percentile 1.7-2.4 px on bench people's band-pan), so a face of 31-33
px crosses 32 px and back many times a second: its tallest box says "readable" for a face that is not, and a
stretch of raw heights >= 32 px breaks on one short box."""


@dataclass(eq=False, repr=False)  # no repr: a track's number and box never end up in a log line or traceback
class Track:
    """One face followed across frames. ``number`` only tells tracks apart in memory: never published."""

    number: int
    box: np.ndarray
    """x, y, w, h of the last detection, in frame pixels."""
    first_ts: float
    last_ts: float
    """Seconds (epoch or video time) of the first and of the last detection."""
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    """Change of x, y, w, h per second."""
    hits: int = 1
    """Detector frames that found this face."""
    found_last: bool = True
    """Whether the last detector frame found it (only those are carried between detector frames)."""
    counted: bool = False
    """Set by the window once the track counted as a person in some window (``entered`` counts a person once)."""
    tallest: float = 0.0
    """The tallest box of its detections, in pixels: a person counts once their face was big enough to read."""
    reading: object = None
    """The classifier's last reading of this face (a ``Prediction``), reused on the frames between detector
    frames (``detect_every``), so the classifier runs only where the detector did."""
    height: float = 0.0
    """The face's height in pixels, smoothed over its detections (``HEIGHT_GAIN``)."""
    readable_since: float | None = None
    """When the current stretch of detections with ``height`` >= the tracker's ``min_px`` began (None: not in one)."""
    readable_s: float = 0.0
    """The longest such stretch so far, first to last detection, in seconds: how long the face was seen big enough
    to read (the window counts a person by it, ``min_seen_s``)."""

    def __post_init__(self):
        self.tallest = max(self.tallest, float(self.box[3]))
        self.height = self.height or float(self.box[3])

    def predict(self, ts: float) -> np.ndarray:
        """Where the box should be at ``ts``: the last detection moved on at the estimated velocity."""
        box = self.box + self.velocity * max(ts - self.last_ts, 0.0)
        box[2:] = np.maximum(box[2:], 1.0)
        return box

    @property
    def seconds_in_view(self) -> float:
        return self.last_ts - self.first_ts


def center_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between the centres of every box in ``a`` (N, 4) and ``b`` (M, 4), in face sizes (the mean of the
    two boxes' square-root areas), as a closeness: 1 - distance, so that larger is better as with IoU. Boxes
    whose sizes differ by more than 1.5x are never close (-inf)."""
    a, b = a.reshape(-1, 4), b.reshape(-1, 4)
    ca, cb = a[:, :2] + a[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2
    sa, sb = np.sqrt(a[:, 2] * a[:, 3]), np.sqrt(b[:, 2] * b[:, 3])
    scale = (sa[:, None] + sb[None, :]) / 2
    distance = np.linalg.norm(ca[:, None, :] - cb[None, :, :], axis=2) / np.maximum(scale, 1e-6)
    ratio = np.maximum(sa[:, None], sb[None, :]) / np.maximum(np.minimum(sa[:, None], sb[None, :]), 1e-6)
    return np.where(ratio <= 1.5, 1.0 - distance, -np.inf)


def greedy_assignment(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(row, column) pairs, best overlap first, each row and column at most once, none below ``threshold``."""
    if iou.size == 0:
        return []
    rows, cols = np.nonzero(iou >= threshold)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_rows, used_cols, pairs = set(), set(), []
    for row, col in zip(rows[order].tolist(), cols[order].tolist()):
        if row not in used_rows and col not in used_cols:
            used_rows.add(row)
            used_cols.add(col)
            pairs.append((row, col))
    return pairs


class Tracker:
    def __init__(self, iou: float = 0.3, max_gap_s: float = 1.0, max_jump: float = 1.0, assign=greedy_assignment,
                 min_px: float = 0.0):
        """``iou``: the least overlap of a box with a track's predicted box to continue it; ``max_gap_s``: a track
        not found again for this long ends at the next detector frame that misses it; ``max_jump``: a box that
        overlaps no track still continues the nearest free one whose predicted centre is at most this many face
        sizes away and whose size is within 1.5x (0 = overlap only); ``assign(iou, threshold)``:
        the matching, replaceable only to measure the alternatives (scripts/measure_track_assignment.py);
        ``min_px``: the smoothed face height from which a track's ``readable_s`` runs."""
        self.iou = iou
        self.min_px = min_px
        self.max_jump = max_jump
        self.assign = assign
        self.max_gap_s = max_gap_s
        self.live: list[Track] = []
        self._numbers = itertools.count()
        self._last_ts: float | None = None

    def update(self, boxes: Sequence[Sequence[float]], ts: float) -> tuple[list[Track], list[Track]]:
        """A detector frame at ``ts``: the track of each box (in order), and the tracks that ended.

        Time going backwards (a recording that starts again) ends every track: the new timeline is new people.
        """
        ended = self.finish() if self._last_ts is not None and ts < self._last_ts else []
        self._last_ts = ts
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        predicted = np.array([track.predict(ts) for track in self.live]).reshape(-1, 4)
        pairs = self.assign(iou_matrix(boxes, predicted), self.iou)
        if self.max_jump > 0:  # second pass: what overlap left, by nearness (a new track has no velocity yet)
            free_boxes = sorted(set(range(len(boxes))) - {b for b, _ in pairs})
            free_tracks = sorted(set(range(len(predicted))) - {t for _, t in pairs})
            if free_boxes and free_tracks:
                near = center_distance(boxes[free_boxes], predicted[free_tracks])
                pairs += [(free_boxes[b], free_tracks[t])
                          for b, t in greedy_assignment(near, 1.0 - self.max_jump)]
        assigned: list[Track | None] = [None] * len(boxes)
        for box_index, track_index in pairs:
            track = self.live[track_index]
            self._correct(track, boxes[box_index], ts)
            assigned[box_index] = track
        matched = {id(track) for track in assigned if track is not None}
        for track in self.live:
            if id(track) not in matched:
                track.found_last = False
        drift = self._common_velocity(assigned)
        for index, track in enumerate(assigned):
            if track is None:
                assigned[index] = Track(next(self._numbers), boxes[index].copy(), ts, ts, velocity=drift.copy())
                self._readable(assigned[index], ts)
        still = [t for t in self.live if id(t) in matched or ts - t.last_ts <= self.max_gap_s]
        ended += [t for t in self.live if not (id(t) in matched or ts - t.last_ts <= self.max_gap_s)]
        self.live = still + [t for t in assigned if id(t) not in matched]
        return assigned, ended

    def carried(self, ts: float, width: float = math.inf, height: float = math.inf) -> list[tuple[Track, np.ndarray]]:
        """Between detector frames (``detect_every`` > 1): the predicted boxes of the tracks the last detector
        frame found and that were found at least twice (a single stray detection is never carried), except those
        whose centre has left the ``width`` x ``height`` frame."""
        carried = []
        for track in self.live:
            if track.found_last and track.hits >= 2:
                box = track.predict(ts)
                if 0 <= box[0] + box[2] / 2 < width and 0 <= box[1] + box[3] / 2 < height:
                    carried.append((track, box))
        return carried

    def finish(self) -> list[Track]:
        """End every live track (shutdown, the end of a recording)."""
        ended, self.live = self.live, []
        return ended

    @staticmethod
    def _common_velocity(tracks: Sequence[Track | None]) -> np.ndarray:
        """The median velocity of the established tracks found in this frame (three or more): what the camera's
        own pan does to every face, so a face that appears now is expected to move along with the rest."""
        velocities = [t.velocity for t in tracks if t is not None and t.hits >= 3]
        if len(velocities) >= 3:
            return np.median(velocities, axis=0)
        return np.zeros(4)

    def _correct(self, track: Track, box: np.ndarray, ts: float) -> None:
        elapsed = ts - track.last_ts
        if elapsed > 0:
            measured = (box - track.box) / elapsed
            gain = 1.0 if track.hits == 1 else VELOCITY_GAIN  # the first measurement replaces the prior
            track.velocity = track.velocity + gain * (measured - track.velocity)
        track.box = box.copy()
        track.tallest = max(track.tallest, float(box[3]))
        track.height += HEIGHT_GAIN * (float(box[3]) - track.height)
        track.last_ts = ts
        track.hits += 1
        track.found_last = True
        self._readable(track, ts)

    def _readable(self, track: Track, ts: float) -> None:
        """Extend or break the track's stretch at a readable size with its detection at ``ts``. A detector frame
        that misses the face does not break it: whether the face is still there is the track's own question
        (``max_gap_s``); a smoothed height under ``min_px`` does."""
        if track.height >= self.min_px:
            if track.readable_since is None:
                track.readable_since = ts
            track.readable_s = max(track.readable_s, ts - track.readable_since)
        else:
            track.readable_since = None
