"""The capture thread of a live source: reads it at its own pace and keeps only the newest frame (a buffer of one).

The agent takes a frame when it is free; frames it never took are counted as skipped, so a slow
classifier never builds a queue. A source that fails, or stalls for ``stall_s``, is closed and
reopened with exponential backoff, and the agent keeps publishing status meanwhile. A recording (a video
file, ``FrameSource.recorded``) is not read here: the agent reads every frame of it itself.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from emo7ion.edge.config import SourceConfig
from emo7ion.edge.sources.base import FrameSource, SourceError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".m4v", ".avi", ".mkv", ".mov", ".h264", ".mjpeg", ".webm", ".mpg", ".mpeg", ".ts", ".wmv")


def infer_source(spec: str) -> dict:
    """``--source`` as settings: 'picamera2', a camera index or URL, a video file (a recording), or images."""
    if spec == "picamera2":
        return {"kind": "picamera2", "path": ""}
    if spec.isdigit() or "://" in spec:
        return {"kind": "opencv", "path": spec}
    if Path(spec).suffix.lower() in VIDEO_SUFFIXES:
        return {"kind": "video", "path": spec}
    return {"kind": "images", "path": spec}


def make_source(config: SourceConfig) -> FrameSource:
    """The configured source. A video file is a recording, analysed frame by frame in video time, unless
    ``loop`` is set: then it is replayed as a live camera (the wall clock, the newest frame), as before."""
    if config.kind == "images":
        from emo7ion.edge.sources.images import ImageFolderSource

        return ImageFolderSource(config.path, loop=config.loops)
    if config.kind == "video" and not config.loops:
        from emo7ion.edge.sources.video import VideoFileSource

        return VideoFileSource(config.path, max_fps=config.max_fps)
    if config.kind in ("opencv", "video"):
        from emo7ion.edge.sources.opencv import OpenCVSource

        return OpenCVSource(config.path, config.width, config.height, loop=config.loops)
    from emo7ion.edge.sources.picamera import PicameraSource

    return PicameraSource(config.width, config.height)


class LatestFrame:
    """A slot holding one frame; putting over an untaken frame counts a skip."""

    def __init__(self):
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._taken = True
        self.skipped = 0

    def put(self, frame: np.ndarray) -> None:
        with self._cond:
            if not self._taken:
                self.skipped += 1
            self._frame, self._taken = frame, False
            self._cond.notify()

    def take(self, timeout: float) -> np.ndarray | None:
        with self._cond:
            if self._taken and not self._cond.wait_for(lambda: not self._taken, timeout=timeout):
                return None
            self._taken = True
            return self._frame


class Capture:
    """Owns the source and its thread; ``ok`` says whether frames are flowing."""

    def __init__(self, source: FrameSource, config: SourceConfig, stop: threading.Event):
        self.source = source
        self.config = config
        self.frames = LatestFrame()
        self._stop = stop
        self.ok = False
        self.finished = threading.Event()  # a non-looping file source reached its end
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float = 5.0) -> None:
        if self._thread.ident is not None:  # a recording is read by the agent itself: no thread was started
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self.config.reopen_min_s
        interval = 1.0 / self.config.fps if self.config.fps > 0 else 0.0
        while not self._stop.is_set():
            try:
                self.source.open()
            except Exception as error:  # noqa: BLE001  any failure to open is retried with backoff
                self._failed(error, delay)
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, self.config.reopen_max_s)
                continue
            log.info("source %s open", self.source.name)
            try:
                self._pump(interval)
                delay = self.config.reopen_min_s  # it worked for a while: start the backoff afresh
            except Exception as error:  # noqa: BLE001  a driver's own exceptions too: reopen, never die
                self._failed(error, delay)
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, self.config.reopen_max_s)
            finally:
                self.source.close()
            if self.finished.is_set():
                break
        self.ok = False

    def _pump(self, interval: float) -> None:
        last_frame = time.monotonic()
        next_due = time.monotonic()
        while not self._stop.is_set():
            if interval and not self.source.paced:
                if self._stop.wait(max(0.0, next_due - time.monotonic())):
                    return
                next_due = max(next_due + interval, time.monotonic() - interval)
            frame = self.source.read()
            now = time.monotonic()
            if frame is None:
                if getattr(self.source, "exhausted", False) or (not self.source.paced and not self.config.loops):
                    self.finished.set()
                    return
                if now - last_frame > self.config.stall_s:
                    raise SourceError(f"no frame for {self.config.stall_s:.0f} s")
                self._stop.wait(0.01)
                continue
            last_frame = now
            self.ok = True
            self.frames.put(frame)
            if not self.source.paced and not interval:
                self._stop.wait(0.001)  # as fast as possible, yet stoppable

    def _failed(self, error: Exception, delay: float) -> None:
        self.ok = False
        self.failures += 1
        log.warning("source %s failed (%s); reopening in %.1f s", self.source.name, error, delay)
