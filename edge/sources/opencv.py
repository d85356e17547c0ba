"""Any OpenCV ``VideoCapture``: a USB camera index, an RTSP/HTTP stream URL or a video file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emo7ion.edge.sources.base import FrameSource, SourceError


class OpenCVSource(FrameSource):
    name = "opencv"

    def __init__(self, target: str, width: int = 1280, height: int = 720, loop: bool = True):
        self.target: int | str = int(target) if target.isdigit() else target
        self.width, self.height = width, height
        self.loop = loop
        self._capture = None

    @property
    def is_file(self) -> bool:
        return isinstance(self.target, str) and Path(self.target).is_file()

    def open(self) -> None:
        import cv2

        capture = cv2.VideoCapture(self.target)
        if isinstance(self.target, int):
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a backlog
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"OpenCV cannot open {self.target!r}")
        self._capture = capture

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            raise SourceError("source is not open")
        ok, frame = self._capture.read()
        if ok:
            return frame
        if self.is_file and self.loop:
            import cv2

            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
            if ok:
                return frame
        if self.is_file and not self.loop:
            return None
        raise SourceError(f"{self.target!r} returned no frame")

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    @property
    def paced(self) -> bool:
        return not self.is_file
