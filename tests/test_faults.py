"""Faults with real processes, each ending with every window the agents made stored exactly once and every outbox
empty: the broker SIGKILLed under twenty agents, the aggregator kill -9'd, the aggregator away while the broker is
SIGKILLed, an aggregator's broker session expiring, a network partition, PostgreSQL restarted under two aggregators
sharing a subscription. Then a full and a corrupt outbox. Loopback only.

Only an agent that holds a window until an aggregator acknowledges storing it can pass the first six: in each, the
broker loses windows it had acknowledged to the agent (docs/architecture.md). Windows are 1 s and an unacknowledged
window is sent again after RESEND_S (doubling up to RESEND_MAX_S), so a case lasts tens of seconds; what a case
waits for has a deadline, and a sleep only ever sets how long a fault lasts."""

import getpass
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mqtt_helpers import Recorder, start_plain_broker
from postgres import PostgresUnavailable, ThrowawayPostgres
from tcp_proxy import TcpProxy
from test_scale_out import AggregatorProcess

from emo7ion.aggregator import config as aggregator_config
from emo7ion.aggregator.service import Aggregator
from emo7ion.broker_config.accounts import add_aggregator, add_camera
from emo7ion.broker_config.layout import MAX_QUEUED_BYTES, MAX_QUEUED_MESSAGES, init_broker
from emo7ion.broker_config.runner import Mosquitto, free_port
from emo7ion.edge import config as edge_config
from emo7ion.edge.agent import Agent
from emo7ion.edge.sources.base import FrameSource
from helpers import wait_until

MODEL = Path(__file__).resolve().parents[1] / "models" / "emo7ion-edge-int8.tflite"
RESEND_S = 3.0
RESEND_MAX_S = 6.0
STALL_S = 4 * RESEND_MAX_S
"""The windows still missing have not changed for this long: re-sending has given up (or never existed)."""


class QuietRoom(FrameSource):
    """Small empty frames: the agents run their whole loop cheaply, so twenty fit on two cores."""

    name = "quiet room"

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray:
        return np.full((96, 96, 3), 100, np.uint8)

    @property
    def paced(self) -> bool:
        return False


def make_agent(tmp_path: Path, index: int, url: str, venue: str = "hall", **broker: str) -> Agent:
    """Camera ``cam-NN`` of ``venue``: 1 s windows, its outbox ``outbox-NN.sqlite``, short re-send waits;
    ``broker``: credentials and CA for a secured broker."""
    config = edge_config.load(None, {
        "venue": venue, "camera": f"cam-{index:02d}", "model": str(MODEL), "window_s": 1.0,
        "health_interval_s": 1.0, "detector": {"type": "haar"},
        "source": {"kind": "images", "path": "(quiet room)", "fps": 4.0},
        "broker": {"url": url, "reconnect_min_s": 1, "reconnect_max_s": 1, **broker},
        "outbox": {"path": str(tmp_path / f"outbox-{index:02d}.sqlite"), "resend_s": RESEND_S,
                   "resend_max_s": RESEND_MAX_S}}, environ={})
    return Agent(config, source=QuietRoom())


def read_outbox(path: Path, sql: str, *params) -> list[tuple]:
    """Rows from an outbox file, read as an auditor would (its agent may be running)."""
    connection = sqlite3.connect(path, timeout=30)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


class Fleet:
    """Agents on threads of this process, each with its own outbox file."""

    def __init__(self, agents: list[Agent]):
        self.agents = agents
        self.threads = [threading.Thread(target=a.run, daemon=True) for a in agents]

    def start(self) -> "Fleet":
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Every agent at once ends its window and flushes its outbox (at most 5 s, as a SIGTERM would)."""
        for agent in self.agents:
            agent.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def produced(self) -> dict[tuple[str, str], int]:
        """(venue, camera) -> how many windows it made: the next seq its outbox would hand out (a new outbox
        starts at 0)."""
        return {(a.config.venue, a.config.camera): read_outbox(Path(a.config.outbox.path),
                                                                "SELECT value FROM meta WHERE key='next_seq'")[0][0]
                for a in self.agents}

    def expected(self) -> set[tuple[str, str, int]]:
        return {(venue, camera, seq) for (venue, camera), n in self.produced().items() for seq in range(n)}

    def held(self) -> dict[str, int]:
        """Camera -> windows its outbox still holds (pending, or sent and not acknowledged)."""
        return {a.config.camera: read_outbox(Path(a.config.outbox.path), "SELECT COUNT(*) FROM outbox")[0][0]
                for a in self.agents}

    def overdue(self, age_s: float) -> set[tuple[str, int]]:
        """(camera, seq) of every window an outbox has held for more than ``age_s`` seconds."""
        cutoff = time.time() - age_s
        return {(a.config.camera, seq) for a in self.agents
                for (seq,) in read_outbox(Path(a.config.outbox.path), "SELECT seq FROM outbox WHERE created < ?",
                                          cutoff)}

    def acknowledged(self) -> bool:
        """Every agent holds each window until an aggregator acknowledges it: with outbox.delivery auto (the
        default), once it has heard an aggregator's first acknowledgement."""
        return all(a.outbox.waits_for_acks for a in self.agents)


def stored_rows(db: str) -> list[tuple[str, str, int]]:
    """Every stored window's (venue, camera, seq), duplicates kept, from a SQLite file or a postgresql:// URL."""
    sql = "SELECT venue, camera, seq FROM windows"
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db, connect_timeout=10) as connection:
            return [(v, c, int(s)) for v, c, s in connection.execute(sql).fetchall()]
    if not Path(db).exists():
        return []
    connection = sqlite3.connect(db, timeout=30)
    try:
        return [(v, c, int(s)) for v, c, s in connection.execute(sql).fetchall()]
    finally:
        connection.close()


def catch_up(fleet: Fleet, timeout: float = 90.0) -> None:
    """With the fleet still running (acknowledgements empty outboxes only while agents run): until no outbox holds
    a window older than 2 s, so that stopping leaves each agent only its last window or two to flush, or until the
    overdue windows have not changed for STALL_S. The verdict is ``assert_every_window_stored_once``'s."""
    deadline, overdue, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        now = fleet.overdue(2.0)
        if not now:
            return
        if now != overdue:
            overdue, since = now, time.monotonic()
        elif time.monotonic() - since > STALL_S:
            return
        time.sleep(0.2)


def assert_every_window_stored_once(fleet: Fleet, db: str, case: str, duplicates: Callable[[], float],
                                    timeout: float = 30.0) -> set:
    """After ``fleet.stop()``: every window an agent made is in the store once, none else, every outbox empty.
    Prints the figures, with the redelivered windows the aggregators counted (``duplicates``: received again,
    stored once), on a ``faults:`` line (``pytest -s``); returns the expected keys."""
    expected = fleet.expected()
    wait_until(lambda: set(stored_rows(db)) >= expected, timeout)
    rows = stored_rows(db)
    twice = sorted(key for key, n in Counter(rows).items() if n > 1)
    missing, unknown = sorted(expected - set(rows)), sorted(set(rows) - expected)
    held = {camera: n for camera, n in fleet.held().items() if n}
    print(f"faults: {case}: {len(expected)} windows made, {len(expected) - len(missing)} stored, {len(missing)} "
          f"lost, {len(twice)} stored twice; outboxes hold {sum(held.values())}; {duplicates():.0f} duplicate(s) "
          f"received", flush=True)
    assert not missing, f"{case}: lost {len(missing)} of {len(expected)}, e.g. {missing[:8]}"
    assert not twice, f"{case}: stored more than once: {twice[:8]}"
    assert not unknown, f"{case}: stored windows no agent made: {unknown[:8]}"
    assert not held, f"{case}: windows left in outboxes: {held}"
    return expected


def start_deployed_broker(folder: Path) -> Mosquitto:
    """Anonymous and plain, but with the shipped production profile's state settings (broker_config/templates/
    mosquitto.conf.in): persistence saved every 60 s, its queue bounds, 64 messages in flight a client."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"user {getpass.getuser()}", f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence true",
             f"persistence_location {folder}/", "autosave_interval 60", "max_inflight_messages 64",
             f"max_queued_messages {MAX_QUEUED_MESSAGES}", f"max_queued_bytes {MAX_QUEUED_BYTES}",
             "queue_qos0_messages false", "persistent_client_expiration 7d"]
    config = folder / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    return Mosquitto(config, port, folder / "mosquitto.log").start()


class AggregatorRun(AggregatorProcess):
    """``emo7ion aggregator run`` as its own process (SIGTERM to ``stop``, SIGKILL to ``kill``)."""

    def duplicates(self) -> float:
        return self.metrics()["emo7ion_windows_duplicate_total"]


def aggregator_process(tmp_path: Path, port: int, db: str, client_id: str, shared_group: str | None = None,
                       **settings: str) -> AggregatorRun:
    """Started and serving; ``settings`` become EMO7ION_AGG__* variables."""
    return AggregatorRun(tmp_path, port, db, client_id, shared_group, settings).start().wait_ready(60)


KILLS = 5


def test_broker_sigkilled_five_times_under_twenty_agents(tmp_path):
    """The broker's store is saved every 60 s, so each SIGKILL loses what it held for the aggregator, the
    aggregator's session with it; only the agents' re-sending brings those windows back."""
    broker = start_deployed_broker(tmp_path / "broker")
    db = str(tmp_path / "agg.sqlite")
    service = Aggregator(aggregator_config.load(None, {
        "broker": f"mqtt://127.0.0.1:{broker.port}", "db": db, "port": 0, "client_id": "fault-aggregator"},
        environ={})).start()
    fleet = Fleet([make_agent(tmp_path, i, f"mqtt://127.0.0.1:{broker.port}") for i in range(20)])
    fleet.start()
    try:
        wait_until(fleet.acknowledged, 60, what="an acknowledgement for every agent")
        for _ in range(KILLS):
            time.sleep(1.5)
            broker.stop(kill=True)
            time.sleep(1.0)
            broker.start()
        catch_up(fleet)
        fleet.stop()
        expected = assert_every_window_stored_once(fleet, db, "broker SIGKILLed 5 times, 20 agents",
                                                   lambda: service.ingest.stats.duplicates)
    finally:
        fleet.stop()
        service.stop()
        broker.stop()
    assert len(expected) >= 20 * 8


def test_aggregator_kill_9_then_the_session_delivers_the_backlog(tmp_path):
    broker = start_deployed_broker(tmp_path / "broker")
    db = str(tmp_path / "agg.sqlite")
    aggregator = aggregator_process(tmp_path, broker.port, db, "killed-aggregator")
    fleet = Fleet([make_agent(tmp_path, i, f"mqtt://127.0.0.1:{broker.port}") for i in range(5)])
    fleet.start()
    try:
        wait_until(fleet.acknowledged, 60, what="an acknowledgement for every agent")
        aggregator.kill()
        stored_at_kill = len(stored_rows(db))
        time.sleep(3.0)  # agents keep publishing; the broker queues for the aggregator's session
        aggregator.start().wait_ready(60)
        catch_up(fleet)
        fleet.stop()
        expected = assert_every_window_stored_once(fleet, db, "aggregator kill -9", aggregator.duplicates)
    finally:
        fleet.stop()
        aggregator.stop()
        broker.stop()
    assert len(expected) - stored_at_kill >= 10, "a real backlog crossed the kill"


def test_aggregator_away_while_the_broker_is_sigkilled(tmp_path):
    """The README's deployment (TLS for the cameras, passwords, ACL, a store saved every 60 s): the aggregator
    stops for 20 s (SIGTERM, its session kept on the broker), the broker is SIGKILLed meanwhile and restarted,
    then the aggregator comes back. Everything the broker held for it died with the broker."""
    layout = init_broker(tmp_path / "broker", free_port(), free_port(), tls_bind="127.0.0.1")
    cameras = [add_camera(layout.directory, "hall", f"cam-{i:02d}") for i in range(5)]
    account = add_aggregator(layout.directory, "central")
    broker = layout.mosquitto().start()
    db = str(tmp_path / "agg.sqlite")
    # The aggregator beside the broker, on its plain loopback listener, with its own account.
    aggregator = aggregator_process(tmp_path, layout.port, db, account.username, broker__username=account.username,
                                    broker__password=account.password)
    fleet = Fleet([make_agent(tmp_path, i, f"mqtts://127.0.0.1:{layout.tls_port}", username=c.username,
                                        password=c.password, ca_file=str(layout.ca_cert))
                             for i, c in enumerate(cameras)])
    fleet.start()
    try:
        wait_until(fleet.acknowledged, 60, what="an acknowledgement for every agent")
        aggregator.stop()  # SIGTERM: a clean disconnect, its session (and subscription) stays on the broker
        away = time.monotonic()
        made_before = sum(fleet.produced().values())
        time.sleep(8.0)
        broker.stop(kill=True)
        time.sleep(1.0)
        broker.start()
        time.sleep(max(0.0, 20.0 - (time.monotonic() - away)))
        made_away = sum(fleet.produced().values()) - made_before
        held_away = sum(fleet.held().values())
        aggregator.start().wait_ready(60)
        catch_up(fleet)
        fleet.stop()
        assert_every_window_stored_once(fleet, db, "aggregator away 20 s, broker SIGKILLed meanwhile",
                                        aggregator.duplicates)
    finally:
        fleet.stop()
        aggregator.stop()
        broker.stop()
    assert made_away >= 5 * 12, f"only {made_away} windows were made while the aggregator was away"
    assert held_away >= made_away, f"the outboxes held {held_away} windows when the aggregator came back"


def test_aggregator_session_expiring_with_windows_queued(tmp_path):
    """The aggregator asks for a 3 s session and stays away 10 s: the broker drops its session and what it had
    queued there, and publishes what follows to no one. Nothing on the broker's side can bring those back."""
    broker = start_deployed_broker(tmp_path / "broker")
    db = str(tmp_path / "agg.sqlite")
    aggregator = aggregator_process(tmp_path, broker.port, db, "short-session", session_expiry_s="3")
    fleet = Fleet([make_agent(tmp_path, i, f"mqtt://127.0.0.1:{broker.port}") for i in range(5)])
    fleet.start()
    try:
        wait_until(fleet.acknowledged, 60, what="an acknowledgement for every agent")
        aggregator.stop()
        made_before = sum(fleet.produced().values())
        time.sleep(10.0)
        made_away = sum(fleet.produced().values()) - made_before
        held_away = sum(fleet.held().values())
        aggregator.start().wait_ready(60)
        catch_up(fleet)
        fleet.stop()
        assert_every_window_stored_once(fleet, db, "aggregator session expired (3 s) while away 10 s",
                                        aggregator.duplicates)
    finally:
        fleet.stop()
        aggregator.stop()
        broker.stop()
    assert made_away >= 5 * 6, f"only {made_away} windows were made while the aggregator was away"
    assert held_away >= made_away, f"the outboxes held {held_away} windows when the aggregator came back"


def test_partition_cut_and_restored_several_times(tmp_path):
    """The agents reach the broker through a proxy that drops every connection four times; the aggregator is
    beside the broker. Each camera's windows also first arrive in order."""
    broker = start_deployed_broker(tmp_path / "broker")
    proxy = TcpProxy(broker.port).start()
    recorder = Recorder(broker.port)
    db = str(tmp_path / "agg.sqlite")
    service = Aggregator(aggregator_config.load(None, {
        "broker": f"mqtt://127.0.0.1:{broker.port}", "db": db, "port": 0, "client_id": "partition-aggregator"},
        environ={})).start()
    fleet = Fleet([make_agent(tmp_path, i, f"mqtt://127.0.0.1:{proxy.port}") for i in range(3)])
    fleet.start()
    try:
        wait_until(fleet.acknowledged, 60, what="an acknowledgement for every agent")
        for _ in range(4):
            time.sleep(1.5)
            proxy.cut()
            time.sleep(1.5)
            proxy.restore()
        catch_up(fleet)
        fleet.stop()
        assert_every_window_stored_once(fleet, db, "4 partitions", lambda: service.ingest.stats.duplicates)
    finally:
        fleet.stop()
        service.stop()
        recorder.close()
        proxy.stop()
        broker.stop()
    assert proxy.cuts >= 4
    for agent in fleet.agents:
        seqs = [b["seq"] for b in recorder.bodies("counts") if b["camera"] == agent.config.camera]
        assert list(dict.fromkeys(seqs)) == sorted(set(seqs)), "each camera's windows first arrive in order"


def test_postgresql_restarted_under_two_aggregators_sharing_a_subscription(tmp_path):
    """Two aggregators split the stream ($share) into one PostgreSQL database, which restarts twice mid-stream
    (every connection cut, as in a fail-over)."""
    try:
        postgres = ThrowawayPostgres().start()
    except PostgresUnavailable as error:
        pytest.skip(str(error))
    broker = start_deployed_broker(tmp_path / "broker")
    db = postgres.create_database("faults")
    aggregators = []
    fleet = None
    try:
        aggregators = [aggregator_process(tmp_path, broker.port, db, f"agg-{n}", shared_group="faults") for n in (1, 2)]
        fleet = Fleet([make_agent(tmp_path, i, f"mqtt://127.0.0.1:{broker.port}") for i in range(6)])
        fleet.start()
        wait_until(fleet.acknowledged, 60, what="an acknowledgement for every agent")
        for _ in range(2):
            time.sleep(2.0)
            postgres.restart()
        catch_up(fleet)
        fleet.stop()
        assert_every_window_stored_once(fleet, db, "PostgreSQL restarted twice under 2 aggregators",
                                        lambda: sum(a.duplicates() for a in aggregators))
        shares = [a.stored() for a in aggregators]
        assert all(shares), f"each aggregator stored a share: {shares}"
    finally:
        if fleet is not None:
            fleet.stop()
        for aggregator in aggregators:
            aggregator.stop()
        broker.stop()
        postgres.stop()


def test_full_outbox_disk_keeps_classifying_reports_drops_and_recovers(tmp_path):
    port = free_port()  # nothing listens yet: windows pile up in the outbox
    agent = make_agent(tmp_path, 0, f"mqtt://127.0.0.1:{port}")
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: agent.outbox.depth() >= 2, 20)
        db = agent.outbox._db
        with agent.outbox._lock:
            db.execute("PRAGMA query_only=1")  # an injected write error: every write now fails, as on a full disk
        frames_when_full = agent.stats.frames
        assert wait_until(lambda: agent.stats.frames >= frames_when_full + 8, 20), "it keeps classifying"
        assert wait_until(lambda: agent.outbox._unsaved_drops >= 2, 20), "windows closed meanwhile were refused"
        with agent.outbox._lock:
            db.execute("PRAGMA query_only=0")  # space returns
        broker = start_plain_broker(tmp_path / "broker", port=port)
        recorder = Recorder(port)
        try:
            assert wait_until(lambda: any(h["outbox_dropped"] > 0 for h in recorder.bodies("health")), 20)
            assert wait_until(lambda: agent.outbox.depth() == 0 and recorder.bodies("counts"), 20)
        finally:
            agent.stop.set()
            thread.join(timeout=30)
            recorder.close()
            broker.stop()
    finally:
        agent.stop.set()
        thread.join(timeout=30)
    assert sum(h["outbox_dropped"] for h in recorder.bodies("health")) >= 2


def test_corrupt_outbox_is_moved_aside_and_the_agent_runs(tmp_path):
    (tmp_path / "outbox-00.sqlite").write_bytes(b"garbage" * 1000)
    started = time.time()
    broker = start_plain_broker(tmp_path / "broker")
    recorder = Recorder(broker.port)
    try:
        agent = make_agent(tmp_path, 0, f"mqtt://127.0.0.1:{broker.port}")
        agent.run(duration=2.5)
        assert wait_until(lambda: len(recorder.bodies("counts")) >= 2, 10)
    finally:
        recorder.close()
        broker.stop()
    assert list(tmp_path.glob("outbox-00.sqlite.corrupt-*"))
    first, second = [b["seq"] for b in recorder.bodies("counts")][:2]
    assert second == first + 1 and first >= int(started * 1000), "a recreated outbox's seq starts at the time floor"


pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="the shipped int8 model is missing")
