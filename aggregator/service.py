"""The aggregator process: store, MQTT ingestion, mood publisher, retention, and the HTTP server, wired together.

Each part runs in its own thread and all share one stop event; ``stop`` takes at most a tick or two.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time

from emo7ion.aggregator import http_guard
from emo7ion.aggregator.api import create_app
from emo7ion.aggregator.changes import Changes
from emo7ion.aggregator.config import AggregatorConfig
from emo7ion.aggregator.discovery import Discovery
from emo7ion.aggregator.ingest import Ingest
from emo7ion.aggregator.mood_publisher import MoodPublisher
from emo7ion.aggregator.store import Store
from emo7ion.aggregator.views import Views
from emo7ion.core import messages
from emo7ion.core.service.broker_link import BrokerLink
from emo7ion.core.service.errors import UserError

log = logging.getLogger(__name__)

RETENTION_TICK_S = 3600.0


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
        # The one broker link: our availability (Home Assistant reads it) is its status, "offline" as its will; a
        # persistent session, and messages acknowledged by hand once stored.
        self.link = BrokerLink(config.broker, config.client_id, self.stop_event,
                               status_topic=messages.aggregator_status_topic(config.identity),
                               session_expiry_s=config.session_expiry_s, manual_ack=True)
        self.ingest = Ingest(config, self.store, self.changes, self.stop_event, self.link)
        discovery = Discovery(self.link.publish_retained, config.discovery_prefix, self.link.status_topic,
                              config.mood_window_s) if config.discovery else None
        views = Views(self.store, config.offline_after_s, config.mood_window_s, config.weighting,
                      self.ingest.zones)
        self.moods = MoodPublisher(views, self.changes, self.link, discovery, self.stop_event)
        self.app = create_app(views, config, self.changes, self.ingest.stats, self.stop_event)
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
        self.link.start()  # after every part has registered its subscription and callbacks
        self.moods.thread.start()
        self._retention.start()
        guard = http_guard.ConnectionGuard(self.config.max_connections, self.config.header_timeout_s)
        self._server = uvicorn.Server(uvicorn.Config(
            self.app, log_level="warning", access_log=False, timeout_graceful_shutdown=2,
            http=guard.protocol_class(), timeout_keep_alive=self.config.keepalive_timeout_s,
            backlog=http_guard.ACCEPT_BATCH, h11_max_incomplete_event_size=http_guard.MAX_HEAD_BYTES))
        http_guard.install_log_limits(guard.flood_log)
        self.app.state.http_guard = guard  # its counters in /metrics
        self._http_thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="http",
                                             daemon=True)
        self._http_thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        http_guard.widen_backlog(sock)
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
        self.link.stop()  # nothing more arrives: then the writer stores what it holds and ends
        self.ingest.stop()
        self.store.close()
        log.info("aggregator stopped: %d stored, %d duplicates, %s rejected", self.ingest.stats.stored,
                 self.ingest.stats.duplicates, dict(self.ingest.stats.rejected) or 0)
