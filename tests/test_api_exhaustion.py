"""The HTTP API under connection exhaustion (issue 20 part 5, must-show 4): a real aggregator process with the
usual ``ulimit -n 1024``, 1,100 slow-loris connections (request headers never finished, one more header line
every second, each closed one opened again at once), and a health probe that must keep answering.

Before the guard: the API was unreachable for the whole attack and asyncio logged an ``accept() out of system
resource`` traceback per refused accept (186 MB in 40 s)."""

from __future__ import annotations

import http.client
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

from emo7ion.broker_config.runner import free_port, wait_for_port

pytestmark = pytest.mark.slow

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
        worst = max(took for _, _, took in probes)
        print(f"\nslow-loris {ATTACK_CONNECTIONS} connections for {ATTACK_S:.0f} s, aggregator NOFILE "
              f"{AGGREGATOR_NOFILE}: {len(probes)} probes of /healthz, {len(bad)} failed or over "
              f"{PROBE_TIMEOUT_S:.0f} s, slowest {worst:.3f} s; attacker connections opened {attacker.opened}, "
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
