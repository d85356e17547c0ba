"""The HTTP server's defence against connection exhaustion (issue 20 part 5).

uvicorn's h11 protocol waits for a request's headers forever: 1,100 slow-loris connections (headers never
finished) took every file descriptor of a process with the usual ``ulimit -n 1024``, so nothing else was accepted,
and asyncio logged a traceback for each refused accept (its accept loop goes on through the whole backlog after
EMFILE: 186 MB of log in 40 s). Three parts here:

- every connection has ``header_timeout_s`` to deliver a complete request head, on arrival and again after each
  response on a kept-alive connection (uvicorn's own keep-alive timer only runs while nothing is received);
- at most ``cap`` connections are open, well below the file-descriptor limit; a connection past the cap evicts the
  oldest one still waiting for its head (a client that has sent a whole request is never cut off), and only when
  every connection is busy with a request is the newcomer answered 503. So a prober's request, which arrives
  whole, is served while stalled connections make way;
- the accept loop takes at most ``ACCEPT_BATCH`` connections per turn, so accepted-but-not-yet-counted sockets
  stay within the reserve; asyncio's and uvicorn's per-event log lines are rate limited to one line each.

uvicorn's own ``limit_concurrency`` is not used: it counts open connections too, so once stalled connections
filled it every request, a prober's included, would be answered 503. The cap here makes them give way instead.
"""

from __future__ import annotations

import logging
import resource
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

from emo7ion.aggregator.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

ACCEPT_BATCH = 32
"""Connections asyncio accepts per loop turn (uvicorn's ``backlog``, which asyncio also uses as this count)."""
LISTEN_BACKLOG = 2048
"""The kernel's queue of connections not accepted yet: a prober waits in it rather than being refused."""
FD_RESERVE = 128
"""File descriptors kept for everything but HTTP connections (database, broker, logs) and accepts in flight."""
MAX_HEAD_BYTES = 16 * 1024
"""h11's bound on an incomplete request head; a longer one is answered 400."""
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 10\r\n"
        b"connection: close\r\ncontent-length: 41\r\n\r\nevery connection is busy; try again later")
FLOOD_LINES = {
    "asyncio": ("socket.accept() out of system resource",),
    "uvicorn.error": ("Invalid HTTP request received.", "Exceeded concurrency limit.", "Unsupported upgrade request."),
}
"""Log lines a client can trigger once per connection or request: rate limited (``install_log_limits``)."""


def connection_cap(max_connections: int, nofile: int | None = None) -> int:
    """``max_connections``, lowered to fit the soft RLIMIT_NOFILE with a quarter of it (at least ``FD_RESERVE``)
    left for the rest of the process."""
    if nofile is None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile == resource.RLIM_INFINITY:
        return max_connections
    return max(16, min(max_connections, nofile - max(FD_RESERVE, nofile // 4)))


class ConnectionGuard:
    """The open connections in the order they arrived, the cap and the head deadline, and what was cut."""

    def __init__(self, max_connections: int, header_timeout_s: float, nofile: int | None = None):
        self.cap = connection_cap(max_connections, nofile)
        self.header_timeout_s = header_timeout_s
        self.connections: dict[GuardedH11Protocol, None] = {}
        self.evicted = self.refused = self.timed_out = 0
        self._noted = RateLimitedLog(log, interval_s=60.0, burst=1)
        self.flood_log = RateLimitedLog(log)
        """What ``install_log_limits`` writes through; its ``suppressed`` is in ``metrics_text``."""

    def protocol_class(self) -> type[GuardedH11Protocol]:
        """The protocol for ``uvicorn.Config(http=...)``, bound to this guard."""
        return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": self})

    def admit(self, connection: GuardedH11Protocol) -> bool:
        """Count ``connection`` in; past the cap, cut the oldest one still waiting for its head, or, when every
        other connection is busy with a request, refuse this one. Whether ``connection`` stays."""
        self.connections[connection] = None
        if len(self.connections) <= self.cap:
            return True
        victim = next((c for c in self.connections if c is not connection and c.waiting_for_head()), None)
        self._noted.warning("cap", "%d HTTP connections open (max_connections, or 3/4 of the file-descriptor "
                            "limit): closing the oldest that have not sent a whole request (%d so far), answering "
                            "503 when all are busy (%d so far)", self.cap, self.evicted, self.refused)
        if victim is None:
            self.refused += 1
            self.forget(connection)
            connection.transport.write(BUSY)
            connection.transport.close()
            return False
        self.evicted += 1
        self.forget(victim)
        victim.transport.abort()
        return True

    def forget(self, connection: GuardedH11Protocol) -> None:
        self.connections.pop(connection, None)

    def metrics_text(self) -> str:
        """Prometheus lines for /metrics (the store's counters are ``metrics.py``'s)."""
        return "\n".join([
            "# HELP emo7ion_http_connections_open HTTP connections open now",
            "# TYPE emo7ion_http_connections_open gauge",
            f"emo7ion_http_connections_open {len(self.connections)}",
            "# HELP emo7ion_http_connections_cap HTTP connections open at most (max_connections, or 3/4 of NOFILE)",
            "# TYPE emo7ion_http_connections_cap gauge",
            f"emo7ion_http_connections_cap {self.cap}",
            "# HELP emo7ion_http_connections_cut_total HTTP connections closed by the guard: head_timeout (no whole "
            "request in header_timeout_s), evicted (the oldest without a request, past the cap), busy (refused "
            "with 503: every connection had a request in hand)",
            "# TYPE emo7ion_http_connections_cut_total counter",
            f'emo7ion_http_connections_cut_total{{reason="head_timeout"}} {self.timed_out}',
            f'emo7ion_http_connections_cut_total{{reason="evicted"}} {self.evicted}',
            f'emo7ion_http_connections_cut_total{{reason="busy"}} {self.refused}',
            "# HELP emo7ion_http_log_suppressed_total accept-error and per-request server log lines left out by the "
            "rate limit",
            "# TYPE emo7ion_http_log_suppressed_total counter",
            f"emo7ion_http_log_suppressed_total {self.flood_log.suppressed}",
        ]) + "\n"


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request head and a place under the guard's cap."""

    guard: ConnectionGuard

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._head_deadline = None
        super().connection_made(transport)
        if self.guard.admit(self):
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_head()  # the next request on this kept-alive connection has the same time for its head

    def waiting_for_head(self) -> bool:
        """The application has no request of this connection in hand: none yet, or its last response is complete
        (what the client sends after it, a new head or the rest of an unread body, is on the clock)."""
        return self.cycle is None or self.cycle.response_complete

    def _await_head(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        self._head_deadline = self.loop.call_later(self.guard.header_timeout_s, self._head_overdue)

    def _head_overdue(self) -> None:
        self._head_deadline = None
        if self.waiting_for_head() and not self.transport.is_closing():
            self.guard.timed_out += 1
            self.guard.forget(self)
            self.transport.abort()


class _FloodFilter(logging.Filter):
    """Replaces each flood-prone record by at most a few one-line warnings per 10 s (a summary counts the rest)."""

    def __init__(self, prefixes: tuple[str, ...], limited: RateLimitedLog):
        super().__init__()
        self.prefixes, self.limited = prefixes, limited

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        prefix = next((p for p in self.prefixes if message.startswith(p)), None)
        if prefix is None:
            return True
        error = record.exc_info[1] if record.exc_info else None
        self.limited.warning(prefix, "%s from %s%s", prefix.rstrip("."), record.name,
                             f": {error}" if error is not None else "")
        return False


def install_log_limits(limited: RateLimitedLog | None = None) -> RateLimitedLog:
    """Rate-limit the lines of ``FLOOD_LINES`` (idempotent: one filter per logger)."""
    limited = limited or RateLimitedLog(log)
    for name, prefixes in FLOOD_LINES.items():
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, _FloodFilter)]:
            logger.removeFilter(old)
        logger.addFilter(_FloodFilter(prefixes, limited))
    return limited


def widen_backlog(sock: socket.socket) -> None:
    """After the server started (asyncio listened with ``ACCEPT_BATCH``, its per-turn accept count): let the
    kernel queue ``LISTEN_BACKLOG`` connections. Linux applies a second ``listen`` to the running socket."""
    sock.listen(LISTEN_BACKLOG)
