"""Past one machine: aggregator processes sharing one MQTT 5 shared subscription over one database.

Real OS processes (``python -m emo7ion aggregator run``), a real Mosquitto, a real PostgreSQL
(tests/postgres.py) or SQLite file, and a publisher of real windows at QoS 1. Whoever receives a
window, it is stored exactly once, also when one aggregator is killed mid-stream. Each test prints its
measurements on lines starting with ``scale-out:`` (``pytest -s``); docs/scaling.md quotes them.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from mqtt_helpers import start_plain_broker
from postgres import PostgresUnavailable, ThrowawayPostgres

from emo7ion.core import emotions, messages
from helpers import wait_until

VENUE = "scale"
PROBE_VENUE = "probe"
CAMERAS = [f"cam-{i}" for i in range(4)]
GROUP = "grp"
ROUNDS = 100  # windows per camera in the shared-subscription tests: 400 in all
BURST = 5000  # windows queued for one offline aggregator in the ingest-rate test


def report(text: str) -> None:
    print(f"scale-out: {text}", flush=True)


class AggregatorProcess:
    """``emo7ion aggregator run`` as its own OS process; its stdout and log go to ``<client_id>.log``."""

    def __init__(self, folder: Path, broker_port: int, db: str, client_id: str, shared_group: str | None = GROUP,
                 settings: dict[str, str] | None = None):
        self.folder = folder
        self.settings = {f"EMO7ION_AGG__{key.upper()}": value for key, value in (settings or {}).items()}
        self.client_id = client_id
        self.log = folder / f"{client_id}.log"
        self.argv = [sys.executable, "-m", "emo7ion", "aggregator", "run", "--broker",
                     f"mqtt://127.0.0.1:{broker_port}", "--db", db, "--client-id", client_id, "--port", "0"]
        if shared_group:
            self.argv += ["--shared-group", shared_group]
        self.process: subprocess.Popen | None = None
        self.url = ""
        self._log_offset = 0

    def start(self) -> AggregatorProcess:
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMO7ION_AGG__")} | self.settings
        with open(self.log, "ab") as handle:
            self.process = subprocess.Popen(self.argv, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=handle,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            env={**env, "PYTHONUNBUFFERED": "1", "EMO7ION_LOG_LEVEL": "INFO"})
        return self

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def wait_ready(self, timeout: float = 30.0) -> AggregatorProcess:
        """Until this run prints its dashboard URL (the HTTP server is up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.client_id} exited with {self.process.returncode}:\n{self.tail()}")
            text = self.log.read_text(errors="replace")[self._log_offset:]
            found = re.search(r"dashboard: (http://\S+?)/ ", text)
            if found:
                self.url = found.group(1)
                return self
            time.sleep(0.1)
        raise AssertionError(f"{self.client_id} not serving after {timeout:.0f} s:\n{self.tail()}")

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            text = response.read().decode()
        pairs = (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
        return {name: float(value) for name, value in pairs}

    def stored(self) -> int:
        return int(self.metrics()["emo7ion_windows_stored_total"])

    def kill(self) -> None:
        """SIGKILL: no clean disconnect, no flush, unacknowledged messages stay with the broker."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class WindowPublisher:
    """The cameras' side: real v1 windows, QoS 1, each camera's seq from 0, ends 10 s apart in the past."""

    def __init__(self, port: int):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="scale-cameras", protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.seq: Counter = Counter()
        self.pending: list[mqtt.MQTTMessageInfo] = []
        self.base = time.time() - 86400

    def publish(self, venue: str, camera: str) -> None:
        seq = self.seq[(venue, camera)]
        self.seq[(venue, camera)] += 1
        end = self.base + 10.0 * seq
        counts = {label: (seq + i) % 3 for i, label in enumerate(emotions.LABELS)}
        window = messages.Window(
            venue=venue, camera=camera, zone=None, seq=seq, start=dt.datetime.fromtimestamp(end - 10, dt.UTC),
            end=dt.datetime.fromtimestamp(end, dt.UTC), frames=20, faces=sum(counts.values()), counts=counts,
            mean_confidence=0.8, model={"sha256": "0" * 64, "version": "test"})
        self.pending.append(self.client.publish(messages.camera_topic(venue, camera, "counts"),
                                                messages.window_payload(window), qos=1))

    def sent(self, venue: str = VENUE) -> set[tuple[str, int]]:
        return {(camera, seq) for (v, camera), n in self.seq.items() if v == venue for seq in range(n)}

    def flush(self, timeout: float = 30.0) -> None:
        """Until the broker acknowledged every window (PUBACK): from then on it is the broker's."""
        deadline = time.monotonic() + timeout
        for info in self.pending:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        unacked = sum(not info.is_published() for info in self.pending)
        assert unacked == 0, f"{unacked} window(s) not acknowledged by the broker in {timeout:.0f} s"
        self.pending.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def query(db: str, sql: str, params: tuple = ()) -> list[tuple]:
    """One read in its own connection (the aggregators hold theirs); ``?`` placeholders."""
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db, connect_timeout=10) as connection:
            return connection.execute(sql.replace("?", "%s"), params).fetchall()
    connection = sqlite3.connect(db, timeout=30)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def count(db: str, venue: str = VENUE) -> int:
    return query(db, "SELECT COUNT(*) FROM windows WHERE venue = ?", (venue,))[0][0]


def assert_exactly_once(db: str, sent: set[tuple[str, int]]) -> None:
    rows = [(camera, int(seq)) for camera, seq in query(db, "SELECT camera, seq FROM windows WHERE venue = ?",
                                                        (VENUE,))]
    duplicates = [key for key, n in Counter(rows).items() if n > 1]
    assert not duplicates, f"stored more than once: {duplicates[:10]}"
    assert len(rows) == len(sent), f"{len(rows)} stored, {len(sent)} sent"
    assert set(rows) == sent, f"missing: {sorted(sent - set(rows))[:10]}"


def wait_all_subscribed(publisher: WindowPublisher, aggregators: list[AggregatorProcess],
                        timeout: float = 20.0) -> None:
    """Probe windows (their own venue) until each aggregator received one: with round-robin delivery
    that proves every member of the group is subscribed; then until each stored all it received."""
    deadline = time.monotonic() + timeout
    while not all(a.metrics()["emo7ion_messages_received_total"] > 0 for a in aggregators):
        assert time.monotonic() < deadline, "not every aggregator received a probe:\n" + "\n".join(
            a.tail(1500) for a in aggregators)
        publisher.publish(PROBE_VENUE, "probe")
        time.sleep(0.1)
    publisher.flush()

    def settled() -> bool:
        values = [a.metrics() for a in aggregators]
        return all(m["emo7ion_windows_stored_total"] == m["emo7ion_messages_received_total"] for m in values)

    assert wait_until(settled, max(1.0, deadline - time.monotonic())), "probes not stored"


@pytest.fixture(scope="module")
def postgres():
    try:
        server = ThrowawayPostgres().start()
    except PostgresUnavailable as error:
        pytest.skip(str(error))
    yield server
    server.stop()


@pytest.fixture
def broker(tmp_path):
    server = start_plain_broker(tmp_path / "broker")
    yield server
    server.stop()


@pytest.fixture
def cluster(tmp_path, broker):
    """Starts aggregators and a publisher on demand; stops every one of them afterwards."""
    started: dict = {"aggregators": [], "publishers": []}

    def aggregator(db: str, client_id: str, shared_group: str | None = GROUP) -> AggregatorProcess:
        process = AggregatorProcess(tmp_path, broker.port, db, client_id, shared_group)
        started["aggregators"].append(process)
        return process.start()

    def publisher() -> WindowPublisher:
        started["publishers"].append(WindowPublisher(broker.port))
        return started["publishers"][-1]

    yield aggregator, publisher
    for item in started["publishers"]:
        item.close()
    for process in started["aggregators"]:
        process.stop()


def share_the_stream(cluster, db: str, engine: str) -> None:
    """Two aggregators, one shared subscription, one database: every window once, both took a share."""
    start_aggregator, start_publisher = cluster
    started = time.monotonic()
    aggregators = [start_aggregator(db, "agg-1"), start_aggregator(db, "agg-2")]  # at once, on a fresh schema
    for process in aggregators:
        process.wait_ready()
    publisher = start_publisher()
    wait_all_subscribed(publisher, aggregators)
    before = [process.stored() for process in aggregators]
    began = time.monotonic()
    for _ in range(ROUNDS):
        for camera in CAMERAS:
            publisher.publish(VENUE, camera)
    publisher.flush()
    published = time.monotonic() - began
    sent = publisher.sent()
    assert wait_until(lambda: count(db) >= len(sent), 30), f"{count(db)} of {len(sent)} stored after 30 s"
    elapsed = time.monotonic() - began
    assert_exactly_once(db, sent)
    shares = [process.stored() - b for process, b in zip(aggregators, before)]
    assert all(share > 0 for share in shares), f"one aggregator took no share: {shares}"
    assert sum(shares) == len(sent), f"shares {shares} do not add up to {len(sent)}"
    report(f"{engine}, 2 aggregators on ${GROUP}: {len(sent)} windows published in {published:.2f} s, all "
           f"stored once after {elapsed:.2f} s ({len(sent) / elapsed:.0f} windows/s); shares {shares}; "
           f"set-up {began - started:.1f} s")


def test_two_aggregators_share_the_stream_over_postgresql(cluster, postgres):
    share_the_stream(cluster, postgres.create_database("shared"), "postgresql")


def test_two_aggregators_share_the_stream_over_one_sqlite_file(cluster, tmp_path):
    share_the_stream(cluster, str(tmp_path / "shared.sqlite"), "sqlite (one file, WAL)")


def test_killed_aggregator_loses_nothing(cluster, postgres):
    """SIGKILL one of two mid-stream: the other carries on; what the broker gave the killed one (in
    flight, and queued in its persistent session) arrives when it comes back; nothing twice."""
    db = postgres.create_database("killed")
    start_aggregator, start_publisher = cluster
    survivor, victim = start_aggregator(db, "agg-1"), start_aggregator(db, "agg-2")
    survivor.wait_ready()
    victim.wait_ready()
    publisher = start_publisher()
    wait_all_subscribed(publisher, [survivor, victim])
    victim_before = victim.stored()
    killed_after: set = set()
    for round_ in range(ROUNDS):
        for camera in CAMERAS:
            publisher.publish(VENUE, camera)
        if round_ == ROUNDS // 2:
            killed_after = publisher.sent()  # published before the kill (not all acknowledged by then)
            victim_stored = victim.stored() - victim_before
            victim.kill()
        time.sleep(0.01)  # a stream, not one burst
    publisher.flush()
    sent = publisher.sent()

    # The survivor stores what reaches it; wait until the count stops moving.
    last = [-1, time.monotonic()]

    def quiet() -> bool:
        now = count(db)
        if now != last[0]:
            last[:] = [now, time.monotonic()]
        return now == len(sent) or time.monotonic() - last[1] > 2.0

    assert wait_until(quiet, 30)
    stored_rows = {(c, int(s)) for c, s in query(db, "SELECT camera, seq FROM windows WHERE venue = ?", (VENUE,))}
    missing = sent - stored_rows
    missing_before = len(missing & killed_after)
    report(f"kill: agg-2 had stored {victim_stored} when SIGKILLed after {len(killed_after)} of {len(sent)} "
           f"windows were published; with agg-2 down, agg-1 stored {len(stored_rows)}: {len(missing)} missing "
           f"({missing_before} published before the kill, {len(missing) - missing_before} after)")

    started = time.monotonic()
    victim.start().wait_ready()  # the same client id: its persistent session, with what the broker kept for it
    assert wait_until(lambda: count(db) >= len(sent), 30), f"{count(db)} of {len(sent)} stored after the restart"
    assert_exactly_once(db, sent)
    back = victim.metrics()
    report(f"kill: agg-2 restarted with its session: all {len(sent)} stored once {time.monotonic() - started:.2f} s "
           f"after the restart; agg-2 stored {back['emo7ion_windows_stored_total']:.0f} redelivered window(s) "
           f"and skipped {back['emo7ion_windows_duplicate_total']:.0f} it had committed but not acknowledged")


def test_postgresql_restart_loses_nothing(cluster, postgres):
    """The database restarts (a fail-over) mid-stream: the aggregator reconnects and stores every window once;
    no connection of its idles inside a transaction."""
    db = postgres.create_database("restart")
    start_aggregator, start_publisher = cluster
    aggregator = start_aggregator(db, "agg-1").wait_ready()
    publisher = start_publisher()
    wait_all_subscribed(publisher, [aggregator])
    for round_ in range(ROUNDS):
        for camera in CAMERAS:
            publisher.publish(VENUE, camera)
        if round_ == ROUNDS // 2:
            publisher.flush()
            postgres.restart()
    publisher.flush()
    sent = publisher.sent()
    assert wait_until(lambda: count(db) >= len(sent), 30), f"{count(db)} of {len(sent)} stored:\n{aggregator.tail()}"
    assert_exactly_once(db, sent)
    time.sleep(2.5)  # a mood tick (reads) at least
    idle = query(db, "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                     "state = 'idle in transaction' AND now() - state_change > interval '1 second'")[0][0]
    assert idle == 0, f"{idle} connection(s) idle in a transaction"
    errors = aggregator.metrics()["emo7ion_store_errors_total"]
    report(f"postgresql restart mid-stream: all {len(sent)} stored once after reconnecting "
           f"({errors:.0f} failed transaction(s) retried)")


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_burst_ingest_rate(cluster, tmp_path, request, engine):
    """One aggregator drains a backlog queued in its persistent session: windows/s stored, and size."""
    db = str(tmp_path / "burst.sqlite") if engine == "sqlite" else request.getfixturevalue("postgres") \
        .create_database("burst")
    start_aggregator, start_publisher = cluster
    aggregator = start_aggregator(db, "agg-burst", shared_group=None).wait_ready()
    publisher = start_publisher()
    wait_all_subscribed(publisher, [aggregator])
    aggregator.stop()  # a clean disconnect: the session (and its subscription) stays with the broker
    for seq in range(BURST):
        publisher.publish(VENUE, CAMERAS[seq % len(CAMERAS)])
    publisher.flush()
    sent = publisher.sent()
    aggregator.start().wait_ready()
    assert wait_until(lambda: count(db) >= len(sent), 40), f"{count(db)} of {len(sent)} stored after 40 s"
    assert_exactly_once(db, sent)
    batches = query(db, "SELECT received_ts, COUNT(*) FROM windows WHERE venue = ? GROUP BY received_ts "
                        "ORDER BY received_ts", (VENUE,))
    span = batches[-1][0] - batches[0][0]
    rate = (len(sent) - batches[-1][1]) / span if span > 0 else float("inf")
    if engine == "postgresql":
        size = query(db, "SELECT pg_total_relation_size('windows'), pg_relation_size('windows')")[0]
        total = count(db, VENUE) + count(db, PROBE_VENUE)
        where = f"pg_total_relation_size {size[0]} B ({size[0] / total:.0f} B/window with indexes, heap " \
                f"{size[1] / total:.0f} B/window)"
    else:
        query(db, "PRAGMA wal_checkpoint(TRUNCATE)")
        total = count(db, VENUE) + count(db, PROBE_VENUE)
        where = f"file {Path(db).stat().st_size} B ({Path(db).stat().st_size / total:.0f} B/window)"
    report(f"burst, {engine}: {len(sent)} queued windows stored in {len(batches)} transactions "
           f"(mean {len(sent) / len(batches):.0f} a batch) at {rate:.0f} windows/s; {where}")
