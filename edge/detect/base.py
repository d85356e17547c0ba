"""What every face detector plugin returns and promises: boxes in frame pixels from a BGR uint8 frame."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from emo7ion.core.service.errors import UserError


class Detection(NamedTuple):
    """One face: top-left corner and size in pixels of the input frame, and a confidence in 0..1."""

    x: float
    y: float
    w: float
    h: float
    score: float


class DetectorError(UserError, RuntimeError):
    """A detector that cannot be built here: its weights are missing or damaged, or its runtime is not installed
    (the message names the file or says what to install). A user error: the command prints it as one line and
    exits with status 2."""


class FaceDetector(ABC):
    """Built once (weights, interpreter, session in the constructor); :meth:`detect` is called per frame."""

    name: str = "face detector"

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Faces in a BGR uint8 frame (H x W x 3), best score first."""
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            shape = getattr(frame, "shape", None)
            dtype = getattr(frame, "dtype", type(frame).__name__)
            raise ValueError(f"{self.name}: expected a BGR uint8 frame (H, W, 3), got shape {shape} of {dtype}")
        if frame.shape[0] == 0 or frame.shape[1] == 0:
            return []
        return sorted(self.detect_raw(frame), key=lambda d: d.score, reverse=True)

    @abstractmethod
    def detect_raw(self, frame: np.ndarray) -> list[Detection]:
        """The plugin's own work on a frame already checked by :meth:`detect`; any order."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
