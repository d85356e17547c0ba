"""A recorded video file analysed frame by frame: each frame comes with its own time in the video, so the agent can
count windows in video time (a post-event report, a reproducible benchmark) instead of the wall clock.

Unlike a live camera nothing is skipped to keep up: ``read`` returns every frame in order, as fast as the caller
asks, and None once the file has ended. Only a clip faster than ``max_fps`` is thinned, evenly, by timestamp:
the aggregator refuses windows with more frames than its own ``max_fps`` (30 by default) allows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from emo7ion.core.service.errors import UserError
from emo7ion.edge.sources.base import FrameSource, SourceError

log = logging.getLogger(__name__)

FALLBACK_FPS = 25.0
"""Frame rate assumed when the container states none (a raw .h264 or .mjpeg stream)."""


class RecordingError(SourceError, UserError):
    """The file is missing or OpenCV cannot decode it: the user's to fix, and reopening cannot help."""


class VideoFileSource(FrameSource):
    name = "video"

    def __init__(self, path: str, max_fps: float = 30.0):
        self.path = Path(path)
        self.max_fps = max_fps
        self._capture = None
        self.fps = FALLBACK_FPS
        self.frame_count = 0
        self.timestamp = 0.0
        """Seconds of video time of the frame ``read`` returned last (the first frame is 0)."""
        self.end = 0.0
        """Seconds of video time at which the frames read so far end (the last one's time plus its duration)."""
        self.exhausted = False
        self._pos = -1.0  # the decoder's time of the last decoded frame, kept or not
        self._first: float | None = None  # the decoder's time of the first frame (an edit list may shift it)
        self._decoded = 0
        self._next_due = 0.0

    @property
    def recorded(self) -> bool:
        return True

    @property
    def paced(self) -> bool:
        return False

    @property
    def frame_s(self) -> float:
        """How long one frame of the file lasts."""
        return 1.0 / self.fps

    @property
    def duration(self) -> float:
        """The clip's length in seconds, from the container's frame count and rate (0 when it states none)."""
        return self.frame_count / self.fps if self.frame_count > 0 else 0.0

    def open(self) -> None:
        import cv2

        if not self.path.is_file():
            raise RecordingError(f"video file {self.path} does not exist")
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise RecordingError(f"video file {self.path} cannot be read: OpenCV cannot decode it (damaged, "
                                 f"incomplete, or a codec this OpenCV build lacks)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else FALLBACK_FPS
        self.frame_count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        self._capture = capture
        self.timestamp, self.end, self.exhausted = 0.0, 0.0, False
        self._pos, self._first, self._next_due, self._decoded = -1.0, None, 0.0, 0
        if not self.frame_count:
            self.frame_count = self._count_frames()

    def _count_frames(self) -> int:
        """A container without a frame count (a raw stream): count by decoding once, then start again."""
        import cv2

        log.info("%s states no frame count; counting its frames first", self.path)
        count = 0
        while self._capture.grab():
            count += 1
        self._capture.release()
        self._capture = cv2.VideoCapture(str(self.path))
        return count

    def read(self) -> np.ndarray | None:
        """The next frame (every one, unless the clip is faster than ``max_fps``); None at the end of the file."""
        import cv2

        if self._capture is None:
            raise SourceError("video file is not open")
        while True:
            ok, frame = self._capture.read()
            if not ok:
                return self._ended()
            self._decoded += 1
            position = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            # The decoder's time of this frame where it gives one that moves forward; else one frame on.
            self._pos = position if position > self._pos else self._pos + self.frame_s
            if self._first is None:
                self._first = self._pos
            if self.max_fps <= 0 or self._pos - self._first + 1e-6 >= self._next_due:
                break
        if self.max_fps > 0:
            self._next_due = max(self._next_due + 1.0 / self.max_fps, self._pos - self._first + 0.5 / self.max_fps)
        self.timestamp = round(self._pos - self._first, 6)  # 4.9999999 from the decoder is 5.0: on its boundary
        self.end = self.timestamp + max(self.frame_s, 1.0 / self.max_fps if self.max_fps > 0 else 0.0)
        return frame

    def _ended(self) -> None:
        """The end of the file: an error if not even one frame decoded, a warning if far fewer than it states."""
        if not self._decoded:
            raise RecordingError(f"video file {self.path} opened but not one frame of it could be decoded (a codec "
                                 f"this OpenCV build lacks, or a damaged file)")
        if not self.exhausted and self._decoded < 0.98 * self.frame_count:
            log.warning("%s ended after %d of the %d frames its container states: damaged or cut short?",
                        self.path, self._decoded, self.frame_count)
        self.exhausted = True
        return None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
