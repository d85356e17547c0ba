"""The agent's one typed configuration: defaults, then the TOML file, then environment, then flags.

Every key is checked at start and a bad one is reported by its dotted name (``broker.url``), so a typo
in ``edge.toml`` stops the agent with a message instead of being silently ignored.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emo7ion.core import messages
from emo7ion.core.service.broker_connection import BrokerSettings
from emo7ion.core.service.paths import default_file
from emo7ion.core.service.settings import ConfigError, layered
from emo7ion.core.service.settings import check_positive as _positive
from emo7ion.edge.outbox import DELIVERY_MODES

log = logging.getLogger(__name__)

ENV_PREFIX = "EMO7ION_EDGE__"
"""``EMO7ION_EDGE__BROKER__PASSWORD=...`` sets ``broker.password``; '__' separates levels."""


def default_model_path() -> str:
    """The int8 model shipped with the package (``models/`` in a checkout)."""
    from emo7ion.core.service.resources import shipped_model

    return str(shipped_model())


@dataclass
class SourceConfig:
    kind: str = field(default="images", metadata={
        "help": "images | opencv | picamera2 | video (a recorded file: every frame, in video time)"})
    path: str = field(default="", metadata={
        "help": "images: folder or glob; opencv: device index or URL; video: the file"})
    fps: float = field(default=2.0, metadata={"help": "images: replay rate; others: 0 = as delivered"})
    width: int = field(default=1280, metadata={"help": "capture width (opencv, picamera2)"})
    height: int = field(default=720, metadata={"help": "capture height (opencv, picamera2)"})
    loop: bool | None = field(default=None, metadata={
        "help": "start again at the end (default: images yes, a video recording no); a looped video is replayed "
                "as a live camera, in wall-clock time"})
    max_fps: float = field(default=30.0, metadata={
        "help": "video: analyse at most this many frames per second of video, evenly (0 = every frame); the "
                "aggregator refuses windows above its own max_fps, 30 by default"})
    recorded_at: str = field(default="", metadata={
        "help": "video: UTC time of the first frame, e.g. 2026-12-02T18:00:00Z (default: the clip ends when the "
                "analysis starts)"})
    reopen_min_s: float = field(default=1.0, metadata={"help": "first delay before reopening a failed source"})
    reopen_max_s: float = field(default=60.0, metadata={"help": "longest delay between reopen attempts"})
    stall_s: float = field(default=10.0, metadata={"help": "no frame for this long = the source has failed"})

    def validate(self) -> None:
        _choice("source.kind", self.kind, ("images", "opencv", "picamera2", "video"))
        if self.kind != "picamera2" and not self.path:
            raise ConfigError(f"source.path is required for a {self.kind} source")
        if self.kind == "video" and not Path(self.path).is_file():
            raise ConfigError(f"source.path {self.path!r}: no such video file")
        _positive("source.max_fps", self.max_fps, allow_zero=True)
        if self.recorded_at:
            self.recorded_at_epoch()
        _positive("source.fps", self.fps, allow_zero=True)
        _positive("source.width", self.width)
        _positive("source.height", self.height)
        _positive("source.reopen_min_s", self.reopen_min_s)
        if self.reopen_max_s < self.reopen_min_s:
            raise ConfigError("source.reopen_max_s must be >= source.reopen_min_s")
        _positive("source.stall_s", self.stall_s)

    @property
    def loops(self) -> bool:
        """``loop`` as set, else its default for the kind: a video recording stops at its end, the rest loop."""
        return self.loop if self.loop is not None else self.kind != "video"

    def recorded_at_epoch(self) -> float | None:
        """``recorded_at`` in epoch seconds (None when unset); a time without a zone is refused, not guessed."""
        if not self.recorded_at:
            return None
        try:
            moment = dt.datetime.fromisoformat(self.recorded_at)
        except ValueError:
            raise ConfigError(f"source.recorded_at={self.recorded_at!r} must be an ISO 8601 time such as "
                              f"2026-12-02T18:00:00Z") from None
        if moment.tzinfo is None:
            raise ConfigError(f"source.recorded_at={self.recorded_at!r} needs a time zone: end it with Z for UTC "
                              f"or an offset such as +01:00")
        return moment.timestamp()


@dataclass
class BrokerConfig(BrokerSettings):
    """The shared ``[broker]`` settings, and how many windows may be in flight."""

    max_inflight: int = field(default=20, metadata={"help": "windows sent and not yet acknowledged"})

    def validate(self, prefix: str = "broker.") -> None:
        super().validate(prefix)
        if self.password and not self.username:
            raise ConfigError(f"{prefix}password is set but {prefix}username is empty")
        _positive(f"{prefix}max_inflight", self.max_inflight)


@dataclass
class OutboxConfig:
    path: str = field(default_factory=lambda: default_file("edge-outbox.sqlite"), metadata={
        "help": "SQLite file of unsent windows (default: edge-outbox.sqlite in the per-user data directory, "
                "~/.local/share/emo7ion)"})
    max_windows: int = field(default=50_000, metadata={"help": "oldest windows are dropped beyond this"})
    max_age_s: float = field(default=7 * 24 * 3600.0, metadata={"help": "windows older than this are dropped"})
    delivery: str = field(default="auto", metadata={
        "help": "when a window leaves the outbox: ack = once an aggregator acknowledges storing it (re-sent until "
                "then); puback = once the broker takes it (the rule before aggregators acknowledged); auto = puback "
                "until this outbox receives its first aggregator ack, then ack (docs/architecture.md)"})
    max_unacked: int = field(default=10_000, metadata={
        "help": "windows the broker took that may wait for an aggregator's ack; beyond it the oldest are released "
                "and counted in outbox_dropped (10,000 = about 28 hours of 10 s windows)"})
    resend_s: float = field(default=30.0, metadata={
        "help": "a window the broker took and no aggregator acknowledged is sent again after this many seconds, "
                "the wait doubling each time"})
    resend_max_s: float = field(default=600.0, metadata={"help": "longest wait between two sends of a window"})

    def validate(self) -> None:
        _positive("outbox.max_windows", self.max_windows)
        _positive("outbox.max_age_s", self.max_age_s)
        _choice("outbox.delivery", self.delivery, DELIVERY_MODES)
        _positive("outbox.max_unacked", self.max_unacked)
        _positive("outbox.resend_s", self.resend_s)
        if self.resend_max_s < self.resend_s:
            raise ConfigError(f"outbox.resend_max_s={self.resend_max_s!r} must be >= outbox.resend_s "
                              f"({self.resend_s!r})")


@dataclass
class TrackConfig:
    """The anonymous face tracker (edge/track.py): boxes and times in memory, never an id on the wire."""

    iou: float = field(default=0.3, metadata={"help": "least overlap of a face box with a track to continue it"})
    max_jump: float = field(default=1.0, metadata={
        "help": "a box overlapping no track continues the nearest one this many face sizes away (0 = overlap only)"})
    max_gap_s: float = field(default=1.0, metadata={"help": "a face not found again for this many seconds has left"})
    min_frames: int = field(default=3, metadata={
        "help": "frames a track needs in a window to count as a person there (fewer: a passer-by or a false face)"})
    min_px: float = field(default=32.0, metadata={
        "help": "a track counts as a person once its face was this many pixels tall in a detection (the size the "
                "classifier reads; smaller faces still count as face detections)"})
    min_seen_s: float = field(default=1.0, metadata={
        "help": "a track counts as a person once its face was at least min_px tall (smoothed over its detections) "
                "for this many seconds in one stretch: a face in view long enough to read, not a flicker"})

    def validate(self) -> None:
        if not 0.0 < self.iou <= 1.0:
            raise ConfigError(f"track.iou={self.iou!r} must be in (0, 1]")
        _positive("track.max_jump", self.max_jump, allow_zero=True)
        _positive("track.max_gap_s", self.max_gap_s)
        _positive("track.min_frames", self.min_frames)
        _positive("track.min_px", self.min_px, allow_zero=True)
        _positive("track.min_seen_s", self.min_seen_s, allow_zero=True)


@dataclass
class EdgeConfig:
    venue: str = field(default="", metadata={"help": "venue id (a-z, 0-9, '-', '_')"})
    camera: str = field(default="", metadata={"help": "camera id, unique in the venue (MQTT id camera.VENUE.CAMERA)"})
    zone: str = field(default="", metadata={"help": "optional zone of the venue this camera watches"})
    window_s: float = field(default=10.0, metadata={"help": "seconds per published window"})
    min_people: int = field(default=3, metadata={
        "help": "a window withholds every emotion figure unless one frame held this many people counted in it"})
    min_faces: int | None = field(default=None, metadata={
        "help": "deprecated (before min_people): also withhold windows with fewer face detections than this"})
    detect_every: int = field(default=1, metadata={
        "help": "run the detector on every Nth frame; in between, the tracked faces' predicted boxes are classified"})
    model: str = field(default_factory=default_model_path, metadata={"help": "the .tflite classifier"})
    allow_unversioned: bool = field(default=False, metadata={
        "help": "run a classifier whose provenance is missing or cut short (its windows report version "
                "'unversioned'); refused otherwise"})
    threads: int = field(default=1, metadata={"help": "interpreter threads"})
    flip_average: bool = field(default=True, metadata={
        "help": "classify each face and its mirror image and average them (+0.8 points on val, about 1 ms a "
                "frame; docs/benchmarks.md)"})
    detector: dict = field(default_factory=dict, metadata={"help": "face detector: type and its options",
                                                           "shorthand": "type"})
    health_interval_s: float = field(default=30.0, metadata={"help": "seconds between health records"})
    track: TrackConfig = field(default_factory=TrackConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    out: str = field(default="", metadata={
        "help": "also write each window's payload to this JSON-lines file (written afresh); with it, the agent "
                "publishes only to a broker that the file, the environment or --broker names"})

    def validate(self) -> EdgeConfig:
        for key in ("venue", "camera"):
            if not getattr(self, key):
                raise ConfigError(f"{key} is required (in the config file, --{key} or {ENV_PREFIX}{key.upper()})")
            try:
                messages.check_id(getattr(self, key), key)
            except messages.MessageError as error:
                raise ConfigError(str(error)) from error
        if self.zone:
            try:
                messages.check_id(self.zone, "zone")
            except messages.MessageError as error:
                raise ConfigError(str(error)) from error
        if not 1.0 <= self.window_s <= messages.MAX_WINDOW_SECONDS:
            raise ConfigError(f"window_s={self.window_s} must be between 1 and {messages.MAX_WINDOW_SECONDS}")
        _positive("min_people", self.min_people, allow_zero=True)
        if self.min_faces is not None:
            _positive("min_faces", self.min_faces, allow_zero=True)
            log.warning("min_faces is deprecated: windows are now withheld by people (min_people=%d, counted "
                        "conservatively); min_faces=%d still applies as an extra floor on face detections "
                        "(docs/migration.md)", self.min_people, self.min_faces)
        _positive("detect_every", self.detect_every)
        _positive("threads", self.threads)
        _positive("health_interval_s", self.health_interval_s)
        if not Path(self.model).is_file():
            raise ConfigError(f"model {self.model!r} does not exist")
        for part in (self.track, self.source, self.outbox):
            part.validate()
        if self.broker.url:  # empty: no broker at all (``out`` without one, see load)
            self.broker.validate()
        from emo7ion.edge.detect import registry

        registry.options(self.detector, "detector.")  # a bad detector block stops here, not when the agent starts
        return self


def _choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} must be one of {', '.join(map(str, allowed))}")


def load(path: str | Path | None = None, overrides: dict | None = None,
         environ: dict[str, str] | None = None) -> EdgeConfig:
    """Defaults < TOML file < environment < ``overrides`` (flags); validated before it is returned. With ``out``
    set, ``broker.url`` defaults to empty: no broker, nothing connects (a post-event report on a laptop)."""
    config = layered(EdgeConfig(), path, ENV_PREFIX, overrides, environ)
    if config.out:  # a file of windows needs no broker: connect only to one that some layer names
        config = layered(EdgeConfig(broker=BrokerConfig(url="")), path, ENV_PREFIX, overrides, environ)
    if not config.detector:
        from emo7ion.edge.detect import registry

        config.detector = dict(registry.DEFAULT)
    return config.validate()
