"""A simulated camera: crowd frames composed from real FER2013 faces, with a mood that drifts over time.

It is a real ``FrameSource``: the agent's detector must find these faces and the int8 classifier must
read them, so every count the demo shows comes from the real pipeline. The script only decides which
faces (of which true emotion) stand in the crowd at a given moment.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from importlib import resources

import numpy as np

from emo7ion.core import emotions
from emo7ion.edge.sources.base import FrameSource

# Each venue's emotion weights at the two ends of its cycle; the crowd drifts between them.
SCRIPTS: dict[str, tuple[dict[str, float], dict[str, float]]] = {
    "concert": ({"neutral": 5, "happy": 2, "surprise": 1, "sad": 1}, {"happy": 6, "surprise": 3, "neutral": 1}),
    "meeting": ({"neutral": 5, "happy": 2, "sad": 1}, {"sad": 3, "angry": 3, "fear": 2, "neutral": 2}),
}


def load_faces() -> tuple[np.ndarray, np.ndarray]:
    with resources.files("emo7ion.demo").joinpath("faces.npz").open("rb") as handle:
        bundle = np.load(handle)
        return bundle["faces"], bundle["labels"]


@dataclass
class _Person:
    """Someone in a seat: one real FER2013 face (so one expression) and the moment they leave."""

    face: np.ndarray
    x: int
    y: int
    leaves_at: float


class CrowdSource(FrameSource):
    """People take seats, stay a while and leave: each keeps one face and one place, so the agent's tracker
    follows real, distinct people (the demo's head counts and dwell mean something), and the mood drifts
    because who arrives follows the script's weights."""

    name = "simulated crowd"

    def __init__(self, script: str = "concert", period_s: float = 180.0, size: tuple[int, int] = (1280, 720),
                 faces_per_frame: tuple[int, int] = (8, 16), seed: int = 0, phase: float = 0.0,
                 dwell_s: tuple[float, float] = (6.0, 40.0)):
        if script not in SCRIPTS:
            raise ValueError(f"unknown crowd script {script!r}; expected one of {', '.join(SCRIPTS)}")
        self.start_weights, self.end_weights = SCRIPTS[script]
        self.period_s = period_s
        self.width, self.height = size
        self.faces_per_frame = faces_per_frame
        self.dwell_s = dwell_s
        self.phase = phase
        self.rng = np.random.default_rng(seed)
        self.faces, self.labels = load_faces()
        self.by_label = {i: np.flatnonzero(self.labels == i) for i in range(emotions.NUM_CLASSES)}
        self.seats: dict[int, _Person] = {}
        self._began = time.monotonic()

    def open(self) -> None:
        self._began = time.monotonic()
        self.seats.clear()

    def weights(self, elapsed: float) -> np.ndarray:
        """Emotion probabilities at ``elapsed`` seconds: a smooth swing between the script's two ends."""
        mix = 0.5 - 0.5 * math.cos(2 * math.pi * (elapsed / self.period_s + self.phase))
        values = np.array([(1 - mix) * self.start_weights.get(label, 0) + mix * self.end_weights.get(label, 0)
                           for label in emotions.LABELS])
        return values / values.sum()

    def occupancy(self, elapsed: float) -> int:
        """How many seats are taken: swings slowly between the two ends of ``faces_per_frame``."""
        low, high = self.faces_per_frame
        mix = 0.5 - 0.5 * math.cos(2 * math.pi * (elapsed / (0.7 * self.period_s) + self.phase))
        return min(32, round(low + mix * (high - low)))

    def _arrive(self, seat: int, elapsed: float) -> _Person:
        import cv2

        cell_w, cell_h = self.width // 8, self.height // 4
        label = int(self.rng.choice(emotions.NUM_CLASSES, p=self.weights(elapsed)))
        face = self.faces[int(self.rng.choice(self.by_label[label]))]
        side = int(self.rng.integers(80, min(cell_w, cell_h) - 8))
        return _Person(face=cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC),
                       x=(seat % 8) * cell_w + int(self.rng.integers(0, cell_w - side)),
                       y=(seat // 8) * cell_h + int(self.rng.integers(0, cell_h - side)),
                       leaves_at=elapsed + float(self.rng.uniform(*self.dwell_s)))

    def read(self) -> np.ndarray:
        elapsed = time.monotonic() - self._began
        for seat in [seat for seat, person in self.seats.items() if person.leaves_at <= elapsed]:
            del self.seats[seat]
        free = [seat for seat in range(32) if seat not in self.seats]
        wanted = self.occupancy(elapsed) - len(self.seats)
        for seat in self.rng.choice(free, size=max(0, min(wanted, len(free))), replace=False):
            self.seats[int(seat)] = self._arrive(int(seat), elapsed)
        frame = np.empty((self.height, self.width, 3), np.uint8)
        frame[:] = np.linspace(70, 120, self.height, dtype=np.uint8)[:, None, None]  # a dim hall
        for person in self.seats.values():
            side = person.face.shape[0]
            x = min(max(person.x + int(self.rng.integers(-2, 3)), 0), self.width - side)  # people fidget
            y = min(max(person.y + int(self.rng.integers(-2, 3)), 0), self.height - side)
            frame[y:y + side, x:x + side] = person.face[:, :, None]
        return frame

    @property
    def paced(self) -> bool:
        return False
