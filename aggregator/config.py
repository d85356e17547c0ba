"""The aggregator's one typed configuration: defaults < TOML file < EMO7ION_AGG__* environment < flags."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from emo7ion.aggregator import zones
from emo7ion.aggregator.mood import RULES, CameraWeighting
from emo7ion.core import messages
from emo7ion.core.service.broker_connection import BrokerSettings
from emo7ion.core.service.paths import default_file
from emo7ion.core.service.settings import ConfigError, check_positive, layered

ENV_PREFIX = "EMO7ION_AGG__"


def _broker_defaults() -> BrokerSettings:
    return BrokerSettings(reconnect_max_s=30.0)  # the aggregator's backoff before the settings were shared


@dataclass
class AggregatorConfig:
    SETTING_ALIASES: ClassVar[dict[str, str]] = {
        "username": "broker.username", "password": "broker.password", "ca_file": "broker.ca_file"}
    """The flat keys (and EMO7ION_AGG__USERNAME, --username) from before the ``[broker]`` table keep working."""

    broker: BrokerSettings = field(default_factory=_broker_defaults, metadata={
        "help": "the [broker] table; a bare URL (broker = \"mqtts://host:8883\", --broker) sets broker.url",
        "shorthand": "url"})
    client_id: str = field(default="emo7ion-aggregator", metadata={
        "help": "MQTT client id: the persistent session (a broker from `emo7ion broker init` uses the user name)"})
    shared_group: str = field(default="", metadata={"help": "join $share/GROUP/... to split the stream"})
    session_expiry_s: int = field(default=7 * 86400, metadata={"help": "how long the broker queues for us"})
    db: str = field(default_factory=lambda: default_file("aggregator.sqlite"), metadata={
        "help": "SQLite file or postgresql:// URL (default: aggregator.sqlite in the per-user data directory, "
                "~/.local/share/emo7ion)"})
    retention_days: float = field(default=30.0, metadata={"help": "windows older than this are deleted"})
    mood_window_s: float = field(default=300.0, metadata={"help": "sliding window of the venue mood"})
    mood_camera_weight: str = field(default="equal", metadata={
        "help": "how cameras with people data are combined in a venue's or zone's mood: 'equal' (each reporting "
                "camera weighs the same: one camera moves the mood by at most 1/N of N cameras) or 'capped' (by "
                "its people's votes, at most mood_camera_cap times the median camera's); docs/architecture.md"})
    mood_camera_cap: float = field(default=2.0, metadata={
        "help": "a camera weighs at most this many times the median camera: in 'capped' venues, and always in "
                "venues whose cameras send only face counts (v1 agents)"})
    offline_after_s: float = field(default=120.0, metadata={"help": "no message for this long = camera offline"})
    host: str = field(default="127.0.0.1", metadata={"help": "HTTP bind address"})
    port: int = field(default=8080, metadata={"help": "HTTP port (0: pick a free one)"})
    token: str = field(default="", metadata={"help": "bearer token the API requires (empty: none)"})
    allow_no_token: bool = field(default=False, metadata={
        "help": "serve a non-loopback host without a token (anyone who reaches it reads the API)"})
    max_streams: int = field(default=100, metadata={"help": "live dashboard streams served at once at most"})
    allowed_hosts: str = field(default="", metadata={
        "help": "comma-separated names the HTTP Host header may carry besides localhost, 127.0.0.1, ::1 and host "
                "(e.g. the name a reverse proxy or a wall screen uses); a wildcard host (0.0.0.0, ::) also accepts "
                "any IP address; '*' accepts every name. Another Host is answered 400 (DNS rebinding)"})
    metrics_token: str = field(default="", metadata={
        "help": "a bearer token that opens /metrics only (for Prometheus' authorization: credentials); token "
                "opens it too. With neither set /metrics is open, like the API"})
    max_connections: int = field(default=1000, metadata={
        "help": "HTTP connections open at once at most (lowered to 3/4 of the soft file-descriptor limit); past it "
                "the oldest connection that has not sent a whole request is closed"})
    header_timeout_s: float = field(default=10.0, metadata={
        "help": "seconds a client has to send a whole request head, on connecting and after each response; then "
                "the connection is closed (slow-loris)"})
    keepalive_timeout_s: float = field(default=5.0, metadata={
        "help": "an idle kept-alive HTTP connection is closed after this many seconds"})
    check_windows: bool = field(default=True, metadata={
        "help": "judge windows against time, each other and frames (off only to test the schema alone)"})
    max_clock_skew_s: float = field(default=300.0, metadata={
        "help": "a window or status dated further ahead than this is rejected"})
    max_fps: float = field(default=30.0, metadata={"help": "frames per second a camera can report at most"})
    max_faces_per_frame: int = field(default=100, metadata={"help": "faces one frame can hold at most"})
    min_window_s: float = field(default=0.5, metadata={
        "help": "a window shorter than this is refused ('short'): half the agent's shortest window_s (1 s); "
                "0 turns the check off"})
    camera_backlog_s: float = field(default=86400.0, metadata={
        "help": "window time one camera may deliver at once after a silence (its outbox's backlog); beyond it a "
                "camera stores no more window time than real time passes, the excess refused ('rate')"})
    max_camera_windows_per_day: int = field(default=200_000, metadata={
        "help": "windows one camera may store per UTC day (an agent at 1 s windows stores 86,400, plus a full "
                "outbox of 50,000); the excess is refused ('day_cap'), today's count per camera in /metrics"})
    venues: dict = field(default_factory=dict, metadata={
        "help": "declared zones: [venues.VENUE] CAMERA = \"ZONE\" (\"\" for none); in a listed venue a window "
                "naming another zone is refused ('zone') and only these zones get mood topics. A venue not "
                "listed: a camera's first zone is its zone (docs/migration.md)"})
    venues_file: str = field(default="", metadata={
        "help": "a TOML file of [venues.VENUE] tables read at start, e.g. the broker directory's venues.toml that "
                "`emo7ion broker add-camera --zone` writes; [venues] here overrides it camera by camera"})
    batch_size: int = field(default=500, metadata={"help": "windows per database transaction at most"})
    batch_wait_s: float = field(default=0.2, metadata={"help": "longest wait to fill a batch"})
    queue_size: int = field(default=10_000, metadata={"help": "received, not yet stored (back-pressure beyond)"})
    ack: bool = field(default=True, metadata={
        "help": "tell each camera, on emo7ion/v1/VENUE/CAMERA/ack, which of its windows are stored (or refused for "
                "good) once the batch committed, so its outbox may delete them (docs/architecture.md)"})
    discovery: bool = field(default=True, metadata={"help": "publish Home Assistant MQTT discovery configs"})
    discovery_prefix: str = field(default="homeassistant", metadata={"help": "Home Assistant's discovery prefix"})

    @property
    def identity(self) -> str:
        """Names our status topic: the user name (which a broker may make the client id), else the client id."""
        return self.broker.username or self.client_id

    @property
    def weighting(self) -> CameraWeighting:
        return CameraWeighting(self.mood_camera_weight, self.mood_camera_cap)

    @property
    def subscription(self) -> str:
        return f"$share/{self.shared_group}/{messages.SUBSCRIPTION}" if self.shared_group else messages.SUBSCRIPTION

    def validate(self) -> AggregatorConfig:
        self.broker.validate("broker.")
        if self.shared_group:
            try:
                messages.check_id(self.shared_group, "shared_group")
            except messages.MessageError as error:
                raise ConfigError(str(error)) from error
        try:
            messages.aggregator_status_topic(self.identity)
        except messages.MessageError as error:
            raise ConfigError(f"{'broker.username' if self.broker.username else 'client_id'}: {error}") from error
        if not self.discovery_prefix or any(char in self.discovery_prefix for char in "+#\0") \
                or self.discovery_prefix.startswith("/") or self.discovery_prefix.endswith("/"):
            raise ConfigError(f"discovery_prefix={self.discovery_prefix!r} must be a topic prefix such as "
                              "'homeassistant' (no '+', '#', leading or trailing '/')")
        if not (self.db.startswith("postgresql://") or self.db.startswith("postgres://") or "://" not in self.db):
            raise ConfigError(f"db={self.db!r} must be a SQLite file path or a postgresql:// URL")
        for key in ("retention_days", "mood_window_s", "offline_after_s", "batch_size", "batch_wait_s", "queue_size",
                    "session_expiry_s"):
            check_positive(key, getattr(self, key))
        for key in ("max_connections", "header_timeout_s", "keepalive_timeout_s"):
            check_positive(key, getattr(self, key))
        self.allowed_hosts = ",".join(check_host_names(self.allowed_hosts))
        for key in ("max_streams", "max_clock_skew_s", "max_fps", "max_faces_per_frame", "camera_backlog_s",
                    "max_camera_windows_per_day"):
            check_positive(key, getattr(self, key))
        if not 0 <= self.min_window_s <= messages.MAX_WINDOW_SECONDS:
            raise ConfigError(f"min_window_s={self.min_window_s!r} must be between 0 and "
                              f"{messages.MAX_WINDOW_SECONDS}")
        try:
            self.venues = zones.merge(zones.read_file(self.venues_file) if self.venues_file else {},
                                      zones.parse(self.venues))
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if self.mood_camera_weight not in RULES:
            raise ConfigError(f"mood_camera_weight={self.mood_camera_weight!r} must be one of {', '.join(RULES)}")
        if not self.mood_camera_cap >= 1.0:
            raise ConfigError(f"mood_camera_cap={self.mood_camera_cap!r} must be >= 1 (a multiple of the median "
                              "camera's weight)")
        if not self.token and not self.allow_no_token and not is_loopback(self.host):
            raise ConfigError(f"host={self.host!r} is reachable from other machines and no token is set: set "
                              f"token (EMO7ION_AGG__TOKEN) or, to serve it open, allow_no_token=true")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port={self.port} is not a TCP port")
        return self


def is_loopback(host: str) -> bool:
    """Only this machine can connect to ``host`` (a loopback address or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


HOST_NAME = re.compile(r"(\*|(\*\.)?[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?)")


def check_host_names(text: str) -> list[str]:
    """The names of ``allowed_hosts`` (comma-separated; DNS names, '*.' for subdomains, '*', or IP addresses),
    lower-cased; a ConfigError names the key and the bad entry."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    for name in names:
        bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
        try:
            ipaddress.ip_address(bare)
            continue
        except ValueError:
            pass
        if not HOST_NAME.fullmatch(name):
            raise ConfigError(f"allowed_hosts: {name!r} is not a host name (a name such as dashboard.example.org, "
                              "*.example.org, an IP address or '*'; no scheme, port or path)")
    return names


def load(path: str | Path | None = None, overrides: dict | None = None,
         environ: dict[str, str] | None = None) -> AggregatorConfig:
    """Defaults < TOML file < environment < ``overrides`` (flags); validated before it is returned."""
    return layered(AggregatorConfig(), path, ENV_PREFIX, overrides, environ).validate()
