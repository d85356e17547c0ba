"""Faults with real processes: broker restarts, aggregator kill -9, a network partition, a full and a
corrupt outbox. Each is bounded in time and count, on loopback only."""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mqtt_helpers import Recorder, start_plain_broker
from tcp_proxy import TcpProxy

from emo7ion.aggregator import config as aggregator_config
from emo7ion.aggregator.service import Aggregator
from emo7ion.broker_config.runner import free_port, wait_for_port
from emo7ion.edge import config as edge_config
from emo7ion.edge.agent import Agent
from emo7ion.edge.outbox import Outbox
from emo7ion.edge.sources.base import FrameSource
from helpers import stored_keys, wait_until, windows_produced

MODEL = Path(__file__).resolve().parents[1] / "models" / "emo7ion-edge-int8.tflite"


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


def make_agent(tmp_path: Path, index: int, port: int, venue: str = "hall") -> Agent:
    config = edge_config.load(None, {
        "venue": venue, "camera": f"cam-{index:02d}", "model": str(MODEL), "window_s": 1.0, "min_faces": 0,
        "health_interval_s": 1.0, "detector": {"type": "haar"},
        "source": {"kind": "images", "path": "(quiet room)", "fps": 4.0},
        "broker": {"url": f"mqtt://127.0.0.1:{port}", "reconnect_min_s": 1, "reconnect_max_s": 1},
        "outbox": {"path": str(tmp_path / f"outbox-{index:02d}.sqlite")}}, environ={})
    return Agent(config, source=QuietRoom())


class Fleet:
    def __init__(self, agents: list[Agent]):
        self.agents = agents
        self.threads = [threading.Thread(target=a.run, daemon=True) for a in agents]

    def start(self) -> "Fleet":
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def expected(self, tmp_path: Path) -> set:
        keys = set()
        for index, agent in enumerate(self.agents):
            produced = windows_produced(tmp_path / f"outbox-{index:02d}.sqlite")
            keys |= {(agent.config.venue, agent.config.camera, seq) for seq in range(produced)}
        return keys


KILLS = 5
LOST_PER_KILL = 1
"""Mosquitto 2.0 writes its PUBACK while handling a PUBLISH and saves its store only at the end of that pass of
its event loop (``autosave_on_changes``), so a SIGKILL in between loses what it had just acknowledged (and the
agent has already deleted). No Mosquitto 2.0 setting closes that gap; measured: at most 1 window per SIGKILL
(a lone publisher killed 8 times lost its last acknowledged message 7 times, never 2). See docs/architecture.md."""


def wait_stored(db: Path, expected: set, timeout: float, quiet_s: float = 3.0) -> set:
    """The stored keys once all ``expected`` are there, or once nothing new has arrived for ``quiet_s``."""
    deadline, last, last_change = time.monotonic() + timeout, set(), time.monotonic()
    while time.monotonic() < deadline:
        stored = set(stored_keys(db))
        if stored >= expected:
            return stored
        if stored != last:
            last, last_change = stored, time.monotonic()
        elif time.monotonic() - last_change > quiet_s:
            break
        time.sleep(0.1)
    return set(stored_keys(db))


def test_broker_restarted_five_times_under_twenty_agents(tmp_path):
    broker = start_plain_broker(tmp_path / "broker", persistence=True, save_every_change=True)
    service = Aggregator(aggregator_config.load(None, {
        "broker": f"mqtt://127.0.0.1:{broker.port}", "db": str(tmp_path / "agg.sqlite"), "port": 0,
        "client_id": "fault-aggregator"}, environ={})).start()
    fleet = Fleet([make_agent(tmp_path, i, broker.port) for i in range(20)]).start()
    try:
        for _ in range(KILLS):
            time.sleep(1.5)
            broker.stop(kill=True)  # SIGKILL: only what mosquitto saved as it went survives
            time.sleep(1.0)
            broker.start()
        time.sleep(1.5)
        fleet.stop()
        expected = fleet.expected(tmp_path)
        stored = wait_stored(tmp_path / "agg.sqlite", expected, 40)
        missing = sorted(expected - stored)
        depths = [Outbox(tmp_path / f"outbox-{i:02d}.sqlite").depth() for i in range(20)]
        assert len(missing) <= KILLS * LOST_PER_KILL, (
            f"{len(missing)} of {len(expected)} missing, e.g. {missing[:8]}; outbox depths {depths}")
    finally:
        fleet.stop()
        service.stop()
        broker.stop()
    keys = stored_keys(tmp_path / "agg.sqlite")
    assert len(keys) == len(set(keys)), "no window stored twice"
    assert set(keys) <= expected and len(keys) >= len(expected) - KILLS * LOST_PER_KILL
    assert len(expected) >= 20 * 8
    assert all(Outbox(tmp_path / f"outbox-{i:02d}.sqlite").depth() == 0 for i in range(20))


def test_aggregator_kill_9_then_the_session_delivers_the_backlog(tmp_path):
    broker = start_plain_broker(tmp_path / "broker", persistence=True)
    db = tmp_path / "agg.sqlite"
    command = [sys.executable, "-m", "emo7ion", "--log-level", "WARNING", "aggregator", "run", "--broker",
               f"mqtt://127.0.0.1:{broker.port}", "--db", str(db), "--client-id", "killed-aggregator"]

    def start_aggregator():
        port = free_port()
        process = subprocess.Popen(command + ["--port", str(port)])
        wait_for_port(port, timeout=60, process=process)
        return process

    aggregator = start_aggregator()
    fleet = Fleet([make_agent(tmp_path, i, broker.port) for i in range(5)]).start()
    try:
        assert wait_until(lambda: db.exists() and len(stored_keys(db)) >= 5, 30)
        aggregator.send_signal(signal.SIGKILL)
        aggregator.wait(timeout=10)
        stored_at_kill = len(stored_keys(db))
        time.sleep(3.0)  # agents keep publishing; the broker queues for the aggregator's session
        aggregator = start_aggregator()
        time.sleep(1.0)
        fleet.stop()
        expected = fleet.expected(tmp_path)
        assert wait_until(lambda: set(stored_keys(db)) >= expected, 40)
    finally:
        fleet.stop()
        aggregator.terminate()
        aggregator.wait(timeout=15)
        broker.stop()
    keys = stored_keys(db)
    assert len(keys) == len(set(keys)) == len(expected)
    assert len(expected) - stored_at_kill >= 10  # a real backlog crossed the kill


def test_partition_cut_and_restored_several_times(tmp_path):
    broker = start_plain_broker(tmp_path / "broker")
    proxy = TcpProxy(broker.port).start()
    recorder = Recorder(broker.port)
    fleet = Fleet([make_agent(tmp_path, i, proxy.port) for i in range(3)]).start()
    try:
        for _ in range(4):
            time.sleep(1.5)
            proxy.cut()
            time.sleep(1.5)
            proxy.restore()
        time.sleep(2.0)
        fleet.stop()
        expected = {(v, c, s) for v, c, s in fleet.expected(tmp_path)}

        def received():
            return {(b["venue"], b["camera"], b["seq"]) for b in recorder.bodies("counts")}

        assert wait_until(lambda: received() >= expected, 30)
    finally:
        fleet.stop()
        recorder.close()
        proxy.stop()
        broker.stop()
    assert proxy.cuts >= 4 and received() == expected
    for agent in fleet.agents:
        seqs = [b["seq"] for b in recorder.bodies("counts") if b["camera"] == agent.config.camera]
        assert list(dict.fromkeys(seqs)) == sorted(set(seqs)), "each camera's windows arrive in order"


def test_full_outbox_disk_keeps_classifying_reports_drops_and_recovers(tmp_path):
    port = free_port()  # nothing listens yet: windows pile up in the outbox
    agent = make_agent(tmp_path, 0, port)
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
        agent = make_agent(tmp_path, 0, broker.port)
        agent.run(duration=2.5)
        assert wait_until(lambda: len(recorder.bodies("counts")) >= 2, 10)
    finally:
        recorder.close()
        broker.stop()
    assert list(tmp_path.glob("outbox-00.sqlite.corrupt-*"))
    first, second = [b["seq"] for b in recorder.bodies("counts")][:2]
    assert second == first + 1 and first >= int(started * 1000), "a recreated outbox's seq starts at the time floor"


pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="the shipped int8 model is missing")
