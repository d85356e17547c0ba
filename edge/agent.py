"""The camera agent: newest frame -> faces -> 48x48 crops -> int8 classifier -> window counts -> outbox.

One loop on the main thread does the work; the capture thread and the MQTT threads feed and drain it.
All of them share one stop event, so SIGTERM finishes the current window (ending it early), flushes the
outbox, publishes ``offline`` and exits within a tick.

A recording (a video file) has no capture thread: this loop reads every one of its frames itself, dates each
by its time in the video (edge/recording.py says from which UTC moment), and ends at the end of the file.
Windows go to the outbox and to any sinks (``--out``: edge/sinks.py); without a broker, to the sinks only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence

from emo7ion.core import faces, messages
from emo7ion.core.runtime import EmotionClassifier
from emo7ion.core.service.settings import ConfigError
from emo7ion.edge import recording
from emo7ion.edge.config import EdgeConfig
from emo7ion.edge.detect import registry
from emo7ion.edge.outbox import Outbox
from emo7ion.edge.publish import Publisher
from emo7ion.edge.sinks import WindowFile, WindowSink
from emo7ion.edge.sources.base import FrameSource
from emo7ion.edge.sources.capture import Capture, make_source
from emo7ion.edge.track import Tracker
from emo7ion.edge.window import WindowCounter

log = logging.getLogger(__name__)

RECORDING_FLUSH_S = 30.0
"""How long a recording's run waits at its end for the broker to take what the outbox holds (a camera's: 5 s)."""

MIN_FACE_PX = 16
"""Faces smaller than this (box height) are not classified: too few pixels to read an expression."""


@dataclasses.dataclass
class Stats:
    started: float = dataclasses.field(default_factory=time.monotonic)
    frames: int = 0
    faces: int = 0
    windows: int = 0
    frame_errors: int = 0
    busy_s: float = 0.0
    detect_s: float = 0.0
    classify_s: float = 0.0
    # since the last health record
    period_frames: int = 0
    period_busy_s: float = 0.0
    period_started: float = dataclasses.field(default_factory=time.monotonic)


class Agent:
    def __init__(self, config: EdgeConfig, stop: threading.Event | None = None, source: FrameSource | None = None,
                 sinks: Sequence[WindowSink] = ()):
        """``source`` replaces the configured one (the demo's simulated crowds); ``sinks`` receive each window's
        payload besides the broker (``config.out`` adds a file). A recording is opened here, so a missing or
        undecodable file stops the agent before anything else starts."""
        self.config = config
        self.stop = stop or threading.Event()
        self.capture = Capture(source or make_source(config.source), config.source, self.stop)
        self.recording = self.capture.source.recorded
        if self.recording:
            self.capture.source.open()
        self.classifier = EmotionClassifier(config.model, num_threads=config.threads,
                                            flip_average=config.flip_average,
                                            allow_unversioned=config.allow_unversioned)
        self.detector = registry.create(config.detector)
        self.sinks: list[WindowSink] = [*sinks, *([WindowFile(config.out)] if config.out else [])]
        if not config.broker.url and not self.sinks:
            raise ConfigError("no broker and no --out: the windows would go nowhere; set --broker or --out")
        model = {"sha256": self.classifier.model_id["sha256"], "version": self.classifier.model_id["version"]}
        self.outbox: Outbox | None = None
        self.publisher: Publisher | None = None
        if config.broker.url:  # else nothing connects: the windows go to the sinks only
            self.outbox = Outbox(config.outbox.path, config.outbox.max_windows, config.outbox.max_age_s,
                                 delivery=config.outbox.delivery, max_unacked=config.outbox.max_unacked,
                                 resend_s=config.outbox.resend_s, resend_max_s=config.outbox.resend_max_s)
            self.publisher = Publisher(config.venue, config.camera, config.broker, self.outbox, model, config.zone,
                                       self.stop)
        self._next_seq = 0  # without an outbox, which hands out sequence numbers otherwise
        self.tracker = Tracker(config.track.iou, config.track.max_gap_s, config.track.max_jump,
                               min_px=config.track.min_px)
        self.window = WindowCounter(config.venue, config.camera, config.window_s, config.min_people, model,
                                    config.zone, now=time.time(), min_track_frames=config.track.min_frames,
                                    min_person_px=config.track.min_px, min_seen_s=config.track.min_seen_s,
                                    min_faces=config.min_faces or 0)
        self.topic = messages.camera_topic(config.venue, config.camera, "counts")
        self.stats = Stats()
        self._skipped_reported = 0
        self._frame_index = 0
        self._origin: float | None = None  # a recording's first frame, epoch seconds (edge/recording.py)
        if self.recording:
            self._origin = recording.origin(self.capture.source.duration, config.source.recorded_at_epoch(),
                                            time.time())
            self.window.restart(self._origin, anchor=self._origin)

    def process(self, frame, ts: float | None = None) -> int:
        """Detect (or, between detector frames, carry the tracked boxes), track, crop and classify one frame taken
        at ``ts`` (seconds; default now) into the current window; the number of faces read."""
        ts = time.time() if ts is None else ts
        began = time.perf_counter()
        if self._frame_index % self.config.detect_every == 0:
            boxes = [(d.x, d.y, d.w, d.h) for d in self.detector.detect(frame) if d.h >= MIN_FACE_PX]
            tracks, ended = self.tracker.update(boxes, ts)
            fresh = list(range(len(tracks)))
        else:  # docs/architecture.md: carried boxes reuse their face's last reading, so every frame's faces count
            carried = self.tracker.carried(ts, frame.shape[1], frame.shape[0])  # alike and the classifier rests
            tracks, boxes, ended = [t for t, _ in carried], [tuple(b) for _, b in carried], []
            fresh = [i for i, track in enumerate(tracks) if track.reading is None]
        self._frame_index += 1
        detected = time.perf_counter()
        if fresh:
            read = self.classifier.classify(faces.prepare_faces(frame, [boxes[i] for i in fresh],
                                                                 self.classifier.crop_margin))
            for index, prediction in zip(fresh, read):
                tracks[index].reading = prediction
        predictions = [track.reading for track in tracks]
        done = time.perf_counter()
        self.window.add_frame(predictions, tracks, ended)
        self.stats.frames += 1
        self.stats.period_frames += 1
        self.stats.faces += len(predictions)
        self.stats.detect_s += detected - began
        self.stats.classify_s += done - detected
        self.stats.busy_s += done - began
        self.stats.period_busy_s += done - began
        return len(predictions)

    def close_window(self, now: float, early: bool = False) -> int | None:
        if early:  # shutdown or the end of a recording: whoever is in view leaves with this window
            self.window.end_tracks(self.tracker.finish())
        record = self.window.close(seq=0, now=now, early=early)
        if record.end <= record.start:
            return None
        seq = self._deliver(record)
        self.stats.windows += 1
        log.info("window %s: %d frames, %d faces, %d people%s", seq, record.frames, record.faces, record.people,
                 " (emotion figures withheld)" if record.withheld else "")
        return seq

    def _deliver(self, record: messages.Window) -> int | None:
        """Into the outbox (the publisher sends it) and to every sink, the same bytes; its seq, or None when the
        outbox's disk refused it. Without a broker the agent numbers its windows itself, from 0."""
        payloads: list[bytes] = []

        def payload(seq: int) -> bytes:
            payloads[:] = [messages.window_payload(dataclasses.replace(record, seq=seq))]
            return payloads[0]

        if self.outbox is not None:
            seq = self.outbox.add(self.topic, payload)
        else:
            seq, self._next_seq = self._next_seq, self._next_seq + 1
            payload(seq)
        if seq is not None:
            for sink in self.sinks:
                sink.write(self.topic, payloads[0])
        if self.publisher is not None:
            self.publisher.wake()
        return seq

    def health(self, source_ok: bool | None = None) -> messages.Health:
        """The record for the period since the last one; ``source_ok`` as read by the caller, else now."""
        source_ok = self.capture.ok if source_ok is None else source_ok
        now = time.monotonic()
        period = max(now - self.stats.period_started, 1e-6)
        skipped = self.capture.frames.skipped - self._skipped_reported
        record = messages.Health(
            venue=self.config.venue, camera=self.config.camera, ts=dt.datetime.now(dt.UTC),
            fps=self.stats.period_frames / period,
            inference_ms=1000.0 * self.stats.period_busy_s / max(self.stats.period_frames, 1),
            skipped_frames=skipped, outbox_depth=self.outbox.depth() if self.outbox else 0,
            outbox_dropped=self.outbox.take_dropped() if self.outbox else 0,
            uptime_s=now - self.stats.started, source_ok=source_ok)
        self._skipped_reported += skipped
        self.stats.period_frames, self.stats.period_busy_s, self.stats.period_started = 0, 0.0, now
        return record

    def run(self, duration: float | None = None) -> Stats:
        """Until the stop event (or ``duration`` seconds), or the end of a recording (or of images that do not
        loop); always ends with a flushed outbox."""
        deadline = time.monotonic() + duration if duration else None
        next_health = time.monotonic() + self.config.health_interval_s
        if self.publisher is not None:
            self.publisher.start()
        if not self.recording:
            self.capture.start()
        log.info("agent %s/%s running: model %s, detector %s%s", self.config.venue, self.config.camera,
                 self.classifier.model_id["version"], self.config.detector.get("type"),
                 f", recording {self.config.source.path} from {recording.iso(self._origin)}"
                 if self._origin is not None else "")
        try:
            while not self.stop.is_set():
                if deadline and time.monotonic() >= deadline:
                    break
                if self.recording:
                    if not self._next_recorded_frame():
                        break
                else:
                    frame = self.capture.frames.take(timeout=0.2)
                    if frame is not None:
                        self._process_safely(frame)
                    elif self.capture.finished.is_set():
                        break
                    now = time.time()
                    if self.window.due(now):
                        self.close_window(now)
                if time.monotonic() >= next_health:
                    next_health += self.config.health_interval_s
                    # Read before the stop event: a capture ended by stopping is not a failed source.
                    source_ok = self.capture.ok or self.recording
                    stopping = not source_ok and self.stop.is_set()
                    if self.publisher is not None and self.publisher.connected.is_set() and not stopping:
                        self.publisher.publish_health(self.health(source_ok))  # else the counters keep adding up
        finally:
            self.shutdown(RECORDING_FLUSH_S if self.recording else 5.0)
        if self.publisher is not None:  # the broker refused our credentials: its link set the stop event
            self.publisher.link.raise_if_refused()
        return self.stats

    def _next_recorded_frame(self) -> bool:
        """A recording's next frame, dated by its time in the video and analysed whatever it takes (nothing is
        skipped to keep up); the window it ends is closed first. False at the end of the file."""
        frame = self.capture.source.read()
        if frame is None:
            return False
        now = self._origin + self.capture.source.timestamp
        if self.window.due(now):
            self.close_window(now)
        self._process_safely(frame, now)
        return True

    def clock(self) -> float:
        """Now, in the agent's time: the wall clock, or for a recording the end of the frames read so far."""
        if self._origin is None:
            return time.time()
        return self._origin + self.capture.source.end

    def _process_safely(self, frame, ts: float | None = None) -> None:
        """One bad frame (a decoder glitch, an odd size) costs that frame, not the agent."""
        try:
            self.process(frame, ts)
        except Exception:  # noqa: BLE001  logged with its traceback; months unattended beat one frame
            self.stats.frame_errors += 1
            if self.stats.frame_errors == 1 or self.stats.frame_errors % 100 == 0:
                log.exception("frame failed (%d so far); skipping it", self.stats.frame_errors)

    def shutdown(self, flush_timeout: float = 5.0) -> None:
        self.stop.set()
        self.capture.join()
        self.close_window(self.clock(), early=True)
        if self.recording:
            self.capture.source.close()
        for sink in self.sinks:
            sink.close()
        if self.publisher is not None:
            if self.recording and self.outbox.depth():
                log.info("waiting up to %.0f s for the broker to take the recording's %d window(s) left",
                         flush_timeout, self.outbox.depth())
            self.publisher.stop(flush_timeout)
        if self.outbox is not None:
            left = self.outbox.depth()
            if left:
                log.warning("%d window(s) stay in the outbox %s and will be sent on the next start", left,
                            self.config.outbox.path)
            self.outbox.close()
        log.info("agent stopped: %d frames, %d faces, %d windows", self.stats.frames, self.stats.faces,
                 self.stats.windows)
