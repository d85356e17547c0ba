"""OpenCV's Haar frontal-face cascade: no extra weights to install, good on frontal faces, blind to turned ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emo7ion.edge.detect.base import Detection, DetectorError, FaceDetector

KEY = "haar"

CASCADE = "haarcascade_frontalface_default.xml"


@dataclass
class Options:
    scale_factor: float = field(default=1.1, metadata={"help": "size step between scanned scales (> 1; smaller "
                                                               "finds more, slower)"})
    min_neighbors: int = field(default=3, metadata={"help": "overlapping hits needed to keep a face (more: fewer "
                                                            "false positives, fewer faces)"})
    min_size: int = field(default=24, metadata={"help": "smallest face side scanned, in pixels"})
    cascade_path: str = field(default="", metadata={"help": "cascade XML (default: OpenCV's frontal-face "
                                                            "default)"})

    def __post_init__(self) -> None:
        if not 1.01 <= self.scale_factor <= 2.0:
            raise ValueError(f"scale_factor={self.scale_factor!r}: must be within 1.01..2")
        if self.min_neighbors < 0:
            raise ValueError(f"min_neighbors={self.min_neighbors!r}: must be 0 or more")
        if self.min_size < 1:
            raise ValueError(f"min_size={self.min_size!r}: must be at least 1 pixel")


class HaarDetector(FaceDetector):
    """The cascade is loaded once; the score is a proxy from the number of merged hits, n / (n + min_neighbors)."""

    def __init__(self, options: Options | None = None):
        self.options = options or Options()
        self.name = KEY
        if self.options.cascade_path:
            path = Path(self.options.cascade_path)
        else:
            data = getattr(cv2, "data", None)
            if data is None or not hasattr(cv2, "CascadeClassifier"):
                raise DetectorError("this OpenCV has no Haar cascades (OpenCV 5 dropped them): "
                                    "pip install 'opencv-python-headless>=4.8,<5'")
            path = Path(data.haarcascades) / CASCADE
        if not path.is_file():
            raise DetectorError(f"Haar cascade {path} not found (pip install 'opencv-python-headless>=4.8,<5' "
                                "or set cascade_path)")
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"{path} is not a Haar cascade OpenCV can load")
        self.path = path

    def detect_raw(self, frame: np.ndarray) -> list[Detection]:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        size = self.options.min_size
        boxes, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=self.options.scale_factor, minNeighbors=self.options.min_neighbors,
            minSize=(size, size))
        floor = max(1, self.options.min_neighbors)
        return [Detection(float(x), float(y), float(w), float(h), float(n) / (float(n) + floor))
                for (x, y, w, h), n in zip(boxes, np.ravel(neighbours))]
