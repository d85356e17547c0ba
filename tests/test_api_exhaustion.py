"""The HTTP API under connection exhaustion (issue 20 part 5, must-show 4): a real aggregator process with the
usual ``ulimit -n 1024``, 1,100 slow-loris connections (request headers never finished, one more header line
every second, each closed one opened again at once), and a health probe that must keep answering.

Before the guard: the API was unreachable for the whole attack and asyncio logged an ``accept() out of system
resource`` traceback per refused accept (186 MB in 40 s)."""

from __future__ import annotations

import asyncio
import http.client
import logging
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time

import pytest
from mqtt_helpers import start_plain_broker

from emo7ion.aggregator import http_guard
from emo7ion.broker_config.runner import free_port, wait_for_port
from helpers import LiveAggregator

AGGREGATOR_NOFILE = 1024
"""The soft RLIMIT_NOFILE the aggregator runs with: the usual default of a login shell."""
ATTACK_CONNECTIONS = int(os.environ.get("EMO7ION_LORIS_CONNECTIONS", "1100"))
ATTACK_S = float(os.environ.get("EMO7ION_LORIS_SECONDS", "15"))
PROBE_EVERY_S = 0.5
PROBE_TIMEOUT_S = 2.0
LOG_GROWTH_LIMIT = 1_000_000


class SlowLoris:
    """``n`` connections that each send a request line and then one header line a second, never the blank line
    that ends the headers; a connection the server closes is opened again at once (what an attacker does)."""

    def __init__(self, port: int, n: int):
        self.port, self.n = port, n
        self.selector = selectors.DefaultSelector()
        self.open: set[socket.socket] = set()
        self.opened = self.closed_by_server = self.connect_failures = 0
        self.peak_open = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="slowloris", daemon=True)

    def _connect(self) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        if sock.connect_ex(("127.0.0.1", self.port)) not in (0, 115):  # 115: EINPROGRESS
            sock.close()
            self.connect_failures += 1
            return
        self.selector.register(sock, selectors.EVENT_WRITE | selectors.EVENT_READ, "connecting")
        self.open.add(sock)
        self.opened += 1

    def _drop(self, sock: socket.socket, by_server: bool) -> None:
        self.selector.unregister(sock)
        self.open.discard(sock)
        sock.close()
        self.closed_by_server += by_server

    def _run(self) -> None:
        next_line = time.monotonic()
        while not self._stop.is_set():
            while len(self.open) < self.n:
                self._connect()
            self.peak_open = max(self.peak_open, len(self.open))
            for key, events in self.selector.select(timeout=0.1):
                sock = key.fileobj
                if events & selectors.EVENT_READ:  # the server answered (408/400/503) or closed: either way gone
                    try:
                        sock.recv(4096)
                    except OSError:
                        pass
                    self._drop(sock, by_server=True)
                elif key.data == "connecting":
                    try:
                        sock.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                        self.selector.modify(sock, selectors.EVENT_READ, "held")
                    except OSError:
                        self._drop(sock, by_server=True)
            if time.monotonic() >= next_line:
                next_line += 1.0
                for sock in list(self.open):
                    if self.selector.get_key(sock).data == "held":
                        try:
                            sock.send(b"X-Loris: 1\r\n")
                        except OSError:
                            self._drop(sock, by_server=True)

    def start(self) -> SlowLoris:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)
        for sock in list(self.open):
            self._drop(sock, by_server=False)
        self.selector.close()


def probe(port: int) -> tuple[int | str, float]:
    """GET /healthz on a fresh connection: its status (or the error) and how long it took."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT_S)
    try:
        connection.request("GET", "/healthz")
        status: int | str = connection.getresponse().status
    except OSError as error:
        status = type(error).__name__
    finally:
        connection.close()
    return status, time.monotonic() - started


def _limit_nofile() -> None:  # in the aggregator's process, before it runs: the usual ulimit -n 1024
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (AGGREGATOR_NOFILE, hard))


@pytest.mark.slow
def test_must_show_4_slow_loris_at_1100_connections_with_nofile_1024(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = ATTACK_CONNECTIONS + 200
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the attacker needs {needed} file descriptors; this shell's hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    broker = start_plain_broker(tmp_path / "broker")
    port = free_port()
    log_path = tmp_path / "aggregator.log"
    command = [sys.executable, "-m", "emo7ion", "--log-level", "INFO", "aggregator", "run", "--broker",
               f"mqtt://127.0.0.1:{broker.port}", "--db", str(tmp_path / "agg.sqlite"), "--port", str(port)]
    with open(log_path, "wb") as log:
        aggregator = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_limit_nofile,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"})
    attacker = None
    try:
        wait_for_port(port, timeout=60, process=aggregator)
        deadline = time.monotonic() + 30
        while probe(port)[0] != 200:  # connected to the broker
            assert time.monotonic() < deadline and aggregator.poll() is None, log_path.read_text()[-2000:]
            time.sleep(0.2)
        log_before = log_path.stat().st_size
        attacker = SlowLoris(port, ATTACK_CONNECTIONS).start()
        probes: list[tuple[float, int | str, float]] = []
        started = time.monotonic()
        while time.monotonic() - started < ATTACK_S:
            status, took = probe(port)
            probes.append((time.monotonic() - started, status, took))
            time.sleep(max(0.0, PROBE_EVERY_S - took))
        peak = attacker.peak_open
        attacker.stop()
        log_growth = log_path.stat().st_size - log_before
        bad = [(round(at, 1), status, round(took, 2)) for at, status, took in probes
               if status != 200 or took > PROBE_TIMEOUT_S]
        times = sorted(took for _, _, took in probes)
        worst, median = times[-1], times[len(times) // 2]
        print(f"\nslow-loris {ATTACK_CONNECTIONS} connections for {ATTACK_S:.0f} s, aggregator NOFILE "
              f"{AGGREGATOR_NOFILE}: {len(probes)} probes of /healthz, {len(bad)} failed or over "
              f"{PROBE_TIMEOUT_S:.0f} s, median {median:.3f} s, slowest {worst:.3f} s; attacker connections opened "
              f"{attacker.opened}, "
              f"closed by the server {attacker.closed_by_server}, peak held {peak}; log +{log_growth} bytes")
        assert peak >= ATTACK_CONNECTIONS, "the attack never held its connections: it proves nothing"
        assert aggregator.poll() is None, "the aggregator died under the attack"
        assert not bad, f"/healthz failed or took over {PROBE_TIMEOUT_S} s under the attack: {bad}"
        assert log_growth < LOG_GROWTH_LIMIT, (log_growth, log_path.read_text()[-3000:])
        assert len(probes) >= ATTACK_S / PROBE_EVERY_S / 2
    finally:
        if attacker is not None and attacker.thread.is_alive():
            attacker.stop()
        aggregator.terminate()
        try:
            aggregator.wait(timeout=15)
        except subprocess.TimeoutExpired:
            aggregator.kill()
        broker.stop()


HEAD_TIMEOUT_S, CAP = 1.0, 20


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """An in-process aggregator with a short head deadline and a small connection cap."""
    live = LiveAggregator(tmp_path_factory.mktemp("guard"), header_timeout_s=HEAD_TIMEOUT_S, max_connections=CAP,
                          keepalive_timeout_s=30)
    yield live
    live.close()


def stalled(port: int, sent: bytes = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if sent:
        sock.sendall(sent)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """When the server closed ``sock`` (seconds from now), or None if it is still open after ``seconds``."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return time.monotonic() - started
    except TimeoutError:
        return None
    except OSError:  # reset: closed too
        return time.monotonic() - started


def request(sock: socket.socket, path: str = "/api/meta") -> bytes:
    """One whole request on a kept-alive connection, and its whole answer."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(4096)
    return head


def cut_count(live: LiveAggregator, reason: str) -> int:
    """The guard's count in /metrics (the metrics request's own connection is the client's kept-alive one)."""
    text = live.get("/metrics").text
    line = next(line for line in text.splitlines()
                if line.startswith(f'emo7ion_http_connections_cut_total{{reason="{reason}"}}'))
    return int(line.split()[-1])


def test_a_head_never_finished_is_cut_at_the_deadline_however_it_trickles(guarded):
    port = guarded.service.port
    silent, trickling = stalled(port, b""), stalled(port)
    started = time.monotonic()
    for _ in range(4):  # a header line every 0.3 s does not buy more time
        time.sleep(0.3)
        trickling.sendall(b"X-Loris: 1\r\n")
    assert closed_within(trickling, 5) is not None
    assert closed_within(silent, 5) is not None
    took = time.monotonic() - started
    assert HEAD_TIMEOUT_S - 0.1 < took < HEAD_TIMEOUT_S + 2.5, took
    assert cut_count(guarded, "head_timeout") >= 2


def test_a_kept_alive_connection_gets_the_same_deadline_for_its_next_head(guarded):
    with stalled(guarded.service.port, b"") as sock:
        for _ in range(3):  # whole requests, each well within the deadline, keep it open
            assert request(sock).startswith(b"HTTP/1.1 200")
            time.sleep(HEAD_TIMEOUT_S / 2)
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # then a head that never ends
        took = closed_within(sock, 5)
        assert took is not None and took < HEAD_TIMEOUT_S + 2.5, took


@pytest.fixture
def capped(tmp_path):
    live = LiveAggregator(tmp_path, header_timeout_s=60, max_connections=CAP)  # no head deadline within the test
    yield live
    live.close()


def test_a_head_over_16_kib_is_answered_400_and_closed(guarded):
    with stalled(guarded.service.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000) as sock:
        sock.settimeout(5)
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]
        assert closed_within(sock, 5) is not None


def test_past_the_cap_the_oldest_stalled_connection_makes_way_and_requests_in_hand_stay(capped):
    guarded = capped
    port = guarded.service.port
    streams = [stalled(port, b"GET /api/stream?venue=hall-a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
               for _ in range(3)]  # the oldest connections, each with a request in hand
    for sock in streams:
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    lorises = [stalled(port) for _ in range(CAP - 3)]
    time.sleep(0.3)
    late = [stalled(port) for _ in range(5)]  # past the cap: the five oldest lorises make way
    time.sleep(0.3)
    with stalled(port, b"") as prober:
        assert request(prober).startswith(b"HTTP/1.1 200")
    cut = [i for i, sock in enumerate(lorises) if closed_within(sock, 0.05) is not None]
    assert cut[:5] == [0, 1, 2, 3, 4] and len(cut) <= 6, cut  # the prober took the sixth's place
    assert all(closed_within(sock, 0.05) is None for sock in streams), "a stream with its request in hand was cut"
    assert all(closed_within(sock, 0.05) is None for sock in late)
    assert cut_count(guarded, "evicted") == len(cut)
    assert f"emo7ion_http_connections_cap {CAP}" in guarded.get("/metrics").text
    for sock in streams + lorises + late:
        sock.close()


def test_accept_errors_become_a_few_one_line_warnings(caplog):
    """asyncio's own handler, called as its accept loop calls it on EMFILE, 2,000 times in a row."""
    limited = http_guard.install_log_limits()
    loop = asyncio.new_event_loop()
    listener = socket.socket()
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(2000):
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(24, "Too many open files"), "socket": listener})
    finally:
        loop.close()
        listener.close()
    lines = [r for r in caplog.records if "accept" in r.getMessage()]
    assert 1 <= len(lines) <= 5, len(lines)
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in lines)
    assert "Too many open files" in lines[0].getMessage()
    assert limited.suppressed >= 1995


def test_the_cap_leaves_a_quarter_of_the_file_descriptors_to_the_rest():
    assert http_guard.connection_cap(1000, nofile=1024) == 768  # ulimit -n 1024
    assert http_guard.connection_cap(1000, nofile=65536) == 1000  # LimitNOFILE=65536 in the systemd units
    assert http_guard.connection_cap(100, nofile=1024) == 100
    assert http_guard.connection_cap(1000, nofile=256) == 128  # FD_RESERVE
