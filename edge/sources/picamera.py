"""The Raspberry Pi camera through Picamera2 (installed from the OS: ``apt install python3-picamera2``).

The module is imported only when this source is chosen, so nothing else needs Picamera2.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np

from emo7ion.edge.sources.base import FrameSource, SourceError, SourceUnavailable

MISSING = ("--source picamera2: Picamera2 is not installed (on Raspberry Pi OS: sudo apt install python3-picamera2, "
           "and create the venv with --system-site-packages)")


def installed() -> bool:
    """Whether ``import picamera2`` can work, found without importing it (libcamera's start-up is slow)."""
    if sys.modules.get("picamera2") is not None:
        return True
    try:
        return importlib.util.find_spec("picamera2") is not None
    except ValueError:  # in sys.modules without a spec: someone provides it
        return True


class PicameraSource(FrameSource):
    name = "picamera2"

    def __init__(self, width: int = 1280, height: int = 720, camera_num: int = 0):
        if not installed():  # at start: a camera that cannot exist is not retried
            raise SourceUnavailable(MISSING)
        self.width, self.height = width, height
        self.camera_num = camera_num
        self._camera = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as error:
            raise SourceUnavailable(MISSING) from error
        try:
            camera = Picamera2(self.camera_num)
            # "RGB888" in libcamera's naming is B,G,R in memory: exactly OpenCV's BGR order.
            config = camera.create_video_configuration(main={"size": (self.width, self.height), "format": "RGB888"})
            camera.configure(config)
            camera.start()
        except Exception as error:  # libcamera raises RuntimeError, IndexError for a missing camera...
            raise SourceError(f"Picamera2 camera {self.camera_num} cannot start: {error}") from error
        self._camera = camera

    def read(self) -> np.ndarray | None:
        if self._camera is None:
            raise SourceError("camera is not started")
        try:
            frame = self._camera.capture_array("main")
        except Exception as error:
            raise SourceError(f"Picamera2 capture failed: {error}") from error
        if frame is None or frame.ndim != 3:
            raise SourceError("Picamera2 returned no image")
        return np.ascontiguousarray(frame[:, :, :3])

    def close(self) -> None:
        if self._camera is not None:
            try:
                self._camera.stop()
                self._camera.close()
            finally:
                self._camera = None
