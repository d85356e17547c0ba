"""The aggregator process: store, MQTT ingestion, mood publisher, retention, and the HTTP server.

Each part runs in its own thread and all share one stop event; ``stop`` takes at most a tick or two.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable

from emo7ion.aggregator.api import create_app
from emo7ion.aggregator.changes import Changes
from emo7ion.aggregator.config import AggregatorConfig
from emo7ion.aggregator.discovery import Discovery
from emo7ion.aggregator.ingest import Ingest, IngestStats
from emo7ion.aggregator.store import Store
from emo7ion.aggregator.views import Pushed, Views
from emo7ion.core import messages
from emo7ion.core.errors import UserError

log = logging.getLogger(__name__)

MOOD_TICK_S = 2.0
MOOD_REFRESH_S = 30.0   # republish even without new data: the sliding window moves on
RETENTION_TICK_S = 3600.0


Publish = Callable[[str, bytes | str], None]
"""Publishes a payload on a topic, retained at QoS 1 (the ingest's connection)."""


class MoodPublisher:
    """Publishes each venue's (and zone's) mood, retained, when it changed. It reads through the views and
    writes through ``publish``; ``link`` (connected, connections) says when to hold back and when a new
    connection needs the retained topics again."""

    def __init__(self, views: Views, changes: Changes, publish: Publish, link: IngestStats,
                 discovery: Discovery | None, stop: threading.Event):
        self.views, self.changes, self.publish, self.link, self.stop = views, changes, publish, link, stop
        self.discovery = discovery
        self._seen: dict[str, int] = {}
        self._pushed = Pushed()
        self._last_refresh = 0.0
        self._connections = 0
        self.thread = threading.Thread(target=self._run, name="mood-publisher", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(MOOD_TICK_S):
            try:
                self.tick()
            except Exception:  # a failed tick must not end the thread; the next one retries
                log.exception("mood update failed")

    def tick(self) -> None:
        versions = self.changes.snapshot()
        refresh = time.monotonic() - self._last_refresh > MOOD_REFRESH_S
        if self.link.connections != self._connections:  # (re)connected: publish retained topics again
            self._connections = self.link.connections
            self._pushed.forget()
            if self.discovery is not None:
                self.discovery.forget()
            refresh = True
        if refresh:
            self._last_refresh = time.monotonic()
        for venue, zones in self.views.venue_zones():
            if not refresh and versions.get(venue, 0) == self._seen.get(venue):
                continue
            self._seen[venue] = versions.get(venue, 0)
            rows = self.views.cameras(venue)
            for zone in [None, *zones]:
                current = self.views.mood(venue, zone, cameras=rows)
                topic = messages.mood_topic(venue, zone)
                if self._pushed.changed(topic, current) and self.link.connected:
                    if self.discovery is not None:
                        self.discovery.announce(venue, zone)
                    self.publish(topic, messages.mood_payload(current))
                    self._pushed.mark(topic, current)


def bind_http(host: str, port: int) -> socket.socket:
    """The HTTP server's listening socket; a port already taken is the user's to fix (one line, no traceback)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is already in use by another program (stop it, or choose "
                            "another with --port)") from None
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return sock


class Aggregator:
    """``stop``: the process's one stop event (a signal handler sets it); every thread here ends on it."""

    def __init__(self, config: AggregatorConfig, stop: threading.Event | None = None):
        self.config = config
        self.stop_event = stop if stop is not None else threading.Event()
        self.store = Store(config.db)
        self.changes = Changes()
        self.ingest = Ingest(config, self.store, self.changes, self.stop_event)
        discovery = Discovery(self.ingest.publish_retained, config.discovery_prefix, self.ingest.status_topic,
                              config.mood_window_s) if config.discovery else None
        self.moods = MoodPublisher(Views(self.store, config.offline_after_s, config.mood_window_s), self.changes,
                                   self.ingest.publish_retained, self.ingest.stats, discovery, self.stop_event)
        self.app = create_app(self.store, config, self.changes, self.ingest.stats, self.stop_event)
        self._retention = threading.Thread(target=self._prune_loop, name="retention", daemon=True)
        self._server = None
        self._http_thread: threading.Thread | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def start(self) -> Aggregator:
        import uvicorn

        sock = bind_http(self.config.host, self.config.port)  # first: a busy port stops us before anything runs
        self.port = sock.getsockname()[1]
        self.ingest.start()
        self.moods.thread.start()
        self._retention.start()
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                     timeout_graceful_shutdown=2))
        self._http_thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="http",
                                             daemon=True)
        self._http_thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        log.info("aggregator serving %s (dashboard at /, API docs at /docs), db %s", self.url, self.config.db)
        return self

    def _prune_loop(self) -> None:
        while True:
            try:
                removed = self.store.prune(time.time() - self.config.retention_days * 86400)
                if removed:
                    log.info("retention: removed %d window(s) older than %.0f days", removed,
                             self.config.retention_days)
            except Exception:  # a database away at this tick must not end retention for good
                log.exception("retention failed; next try in %.0f s", RETENTION_TICK_S)
            if self.stop_event.wait(RETENTION_TICK_S):
                return

    def stop(self) -> None:
        self.stop_event.set()  # first: open dashboards' streams end within a tick (no cancelled tasks), the writer
        # stores what it holds, the mood publisher and retention end
        if self._server is not None:
            self._server.should_exit = True
        if self._http_thread is not None:
            self._http_thread.join(timeout=5)
        self.ingest.stop()
        self.store.close()
        log.info("aggregator stopped: %d stored, %d duplicates, %s rejected", self.ingest.stats.stored,
                 self.ingest.stats.duplicates, dict(self.ingest.stats.rejected) or 0)
