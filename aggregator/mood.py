"""The mood arithmetic: the share of each emotion, the dominant one and a positivity index (positive minus
negative share, -1..1), and how the cameras of a venue (or zone) are combined into one mood so that no camera
weighs more than its bound. :class:`views.Views` applies it to a period.

How cameras are combined (docs/architecture.md, "How a venue's mood is weighted"):

- Each camera has its own tally over the period: its people's votes (one per person per window) when it sends
  v2 windows, else its face-frame counts (a v1 camera).
- A venue (or zone) with people data in the period (any camera sent a v2 window) combines the cameras' own
  shares with ``CameraWeighting.rule``: ``equal`` (the default) gives each reporting camera the same weight, so
  one camera moves any share by at most 1/N of N cameras reporting; ``capped`` weights a camera by its votes,
  capped at ``cap`` times the median camera's, a v1 camera there counting as the median camera.
- A venue with face counts only (every camera still v1) sums face-frame counts as v1 always did, but a camera's
  faces count at most ``cap`` times the median camera's faces (of three or more cameras, one camera far above
  the rest cannot lift the median; of two, the cap cannot bind). Where no camera exceeds that, the mood is
  exactly the v1 mood (the v1 replay test holds it byte for byte).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from emo7ion.core import emotions

RULES = ("equal", "capped")


def shares(counts: dict[str, float]) -> dict[str, float] | None:
    total = sum(counts.values())
    if not total:
        return None
    return {label: round(counts[label] / total, 4) for label in emotions.LABELS}


def positivity(counts: dict[str, float]) -> float | None:
    total = sum(counts.values())
    if not total:
        return None
    positive = sum(counts[label] for label in emotions.POSITIVE)
    negative = sum(counts[label] for label in emotions.NEGATIVE)
    return round((positive - negative) / total, 4)


def dominant(counts: dict[str, float]) -> str | None:
    if not sum(counts.values()):
        return None
    return max(emotions.LABELS, key=lambda label: (counts[label], -emotions.LABELS.index(label)))


@dataclass(frozen=True)
class CameraWeighting:
    """How much one camera may weigh in a venue's or zone's mood (the aggregator's ``mood_camera_weight`` and
    ``mood_camera_cap``)."""

    rule: str = "equal"
    cap: float = 2.0

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"camera weighting {self.rule!r} is not one of {', '.join(RULES)}")
        if not self.cap >= 1.0:
            raise ValueError(f"camera cap {self.cap!r} must be >= 1 (a multiple of the median camera)")


@dataclass(frozen=True)
class CameraTally:
    """One camera's figures over a period: ``faces``, its face-frame counts summed (all its windows), ``votes``,
    its people's votes summed over its v2 windows (None when it sent no v2 window with votes), and ``people``,
    whether it sent any v2 window (withheld ones too)."""

    camera: str
    faces: dict[str, int]
    votes: dict[str, int] | None = None
    people: bool = False

    @property
    def tally(self) -> dict[str, int]:
        """What the camera's own mood is made of: its people's votes where it sends them, else its faces."""
        return self.votes if self.votes is not None else self.faces


def combine(cameras: list[CameraTally], weighting: CameraWeighting) -> dict[str, float]:
    """The venue's (or zone's) weighted tally, whose :func:`shares`, :func:`positivity` and :func:`dominant` are
    its mood. Cameras with nothing counted do not report and weigh nothing."""
    total = {label: 0 for label in emotions.LABELS}
    people = any(c.people or c.votes is not None for c in cameras)
    reporting = [c for c in cameras if sum(c.tally.values()) > 0]
    if not reporting:
        return total
    if not people:
        return _faces_capped(reporting, weighting.cap)
    sizes = {c.camera: sum(c.tally.values()) for c in reporting}
    if weighting.rule == "equal":
        weights = {c.camera: 1.0 for c in reporting}
    else:
        voting = [sizes[c.camera] for c in reporting if c.votes is not None] or list(sizes.values())
        typical = statistics.median(voting)
        raw = {c.camera: sizes[c.camera] if c.votes is not None else typical for c in reporting}
        cap = weighting.cap * statistics.median(list(raw.values()))
        weights = {camera: min(value, cap) for camera, value in raw.items()}
    for camera in reporting:
        scale = weights[camera.camera] / sizes[camera.camera]
        for label in emotions.LABELS:
            total[label] += camera.tally[label] * scale
    return total


def _faces_capped(cameras: list[CameraTally], cap_factor: float) -> dict[str, float]:
    """v1 venues: face-frame counts summed, a camera's faces capped at ``cap_factor`` times the median camera's.
    An uncapped camera adds its integers as they are, so a venue where no cap binds gets exactly v1's sums."""
    sizes = {c.camera: sum(c.faces.values()) for c in cameras}
    cap = cap_factor * statistics.median(list(sizes.values()))
    total: dict[str, float] = {label: 0 for label in emotions.LABELS}
    for camera in cameras:
        size = sizes[camera.camera]
        scale = 1 if size <= cap else cap / size
        for label in emotions.LABELS:
            total[label] += camera.faces[label] if scale == 1 else camera.faces[label] * scale
    return total
