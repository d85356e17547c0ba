"""Acknowledged delivery on a real Mosquitto: the agent's publisher keeps what the broker took until an aggregator
acks it, re-sends it with a backoff (one probe at a time while nobody acks), ignores forged or malformed acks,
drains on PUBACK in auto mode with an aggregator that never acks, and releases and counts past max_unacked."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading

import paho.mqtt.client as mqtt
import pytest
from mqtt_helpers import Recorder, start_plain_broker

from emo7ion.core import messages
from emo7ion.edge.config import BrokerConfig
from emo7ion.edge.outbox import Outbox
from emo7ion.edge.publish import Publisher
from helpers import SHARED, stored_keys, wait_until, windows_produced

VENUE, CAMERA = "hall-a", "cam-1"
COUNTS = messages.camera_topic(VENUE, CAMERA, "counts")
ACKS = messages.ack_topic(VENUE, CAMERA)
MODEL = {"sha256": "0" * 64, "version": "test"}
CROWD = SHARED / "data" / "crowd-sample" / "images"


def payload(seq: int) -> bytes:
    return json.dumps({"seq": seq}).encode()


class Camera:
    """A real Publisher over a real outbox file: what the agent runs, without the camera and classifier."""

    def __init__(self, folder, port: int, **outbox_options):
        self.outbox = Outbox(folder / "outbox.sqlite", **outbox_options)
        self.stop_event = threading.Event()
        broker = BrokerConfig(url=f"mqtt://127.0.0.1:{port}", reconnect_min_s=1, reconnect_max_s=1)
        self.publisher = Publisher(VENUE, CAMERA, broker, self.outbox, MODEL, stop_event=self.stop_event)
        self.publisher.start()
        assert wait_until(self.publisher.connected.is_set, 10)

    def add(self, n: int) -> list[int]:
        seqs = [self.outbox.add(COUNTS, payload) for _ in range(n)]
        self.publisher.wake()
        return seqs

    def close(self) -> None:
        self.stop_event.set()
        self.publisher.stop(flush_timeout=0.5)
        self.outbox.close()


class Acker:
    """Plays the aggregator's part on the ack topic (or anyone's, for the forged ones)."""

    def __init__(self, port: int):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-acker", protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def until_heard(self, camera: Camera) -> None:
        """Ack a seq no window has until the camera has heard an ack (its subscription is in place)."""
        assert wait_until(lambda: self.ack([messages.MAX_SEQ]) or camera.outbox.acks_seen, 10, interval=0.2)

    def ack(self, seqs, topic: str = ACKS) -> None:
        for body in messages.ack_payloads(VENUE, CAMERA, "agg-test", seqs):
            self.send(body, topic)

    def send(self, body: bytes, topic: str = ACKS) -> None:
        self.client.publish(topic, body, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def crowd(tmp_path):
    """Two real crowd photos with readable faces (as test_edge_agent's), linked into a source folder."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("0_Parade_marchingband_1_149.jpg", "11_Meeting_Meeting_11_Meeting_Meeting_11_26.jpg"):
        (folder / name).symlink_to(CROWD / name)
    return folder


@pytest.fixture
def broker(tmp_path):
    broker = start_plain_broker(tmp_path / "broker")
    yield broker
    broker.stop()


@pytest.fixture
def parts(tmp_path, broker):
    made = []

    def make(kind, *args, **kwargs):
        part = kind(*args, **kwargs)
        made.append(part)
        return part

    yield make
    for part in reversed(made):
        part.close()


def sends(recorder: Recorder) -> dict[int, int]:
    """How many times the recorder saw each seq on the counts topic."""
    seen: dict[int, int] = {}
    for body in recorder.bodies("counts"):
        seen[body["seq"]] = seen.get(body["seq"], 0) + 1
    return seen


def test_a_window_the_broker_took_but_no_aggregator_acked_stays_and_is_resent(tmp_path, broker, parts):
    recorder = parts(Recorder, broker.port, COUNTS)
    camera = parts(Camera, tmp_path, broker.port, delivery="ack", resend_s=0.5, resend_max_s=1.0)
    acker = parts(Acker, broker.port)
    acker.until_heard(camera)
    camera.add(3)
    assert wait_until(lambda: camera.outbox.unacked() == 3, 10), "PUBACKed, kept"
    assert wait_until(lambda: min(sends(recorder).get(seq, 0) for seq in range(3)) >= 3, 20), sends(recorder)
    assert camera.outbox.depth() == 3
    acker.ack([0, 1, 2])
    assert wait_until(lambda: camera.outbox.depth() == 0, 10), "acked: gone"
    settled = sends(recorder)
    assert not wait_until(lambda: sends(recorder) != settled, 2.5), "nothing is re-sent once acked"


def test_an_ack_removes_exactly_its_ranges(tmp_path, broker, parts):
    recorder = parts(Recorder, broker.port, COUNTS)
    camera = parts(Camera, tmp_path, broker.port, delivery="ack", resend_s=300)
    acker = parts(Acker, broker.port)
    acker.until_heard(camera)
    camera.add(8)
    assert wait_until(lambda: camera.outbox.unacked() == 8, 10) and wait_until(lambda: len(sends(recorder)) == 8, 5)
    acker.ack([0, 1, 2, 5, 7])
    assert wait_until(lambda: camera.outbox.depth() == 3, 10)
    assert camera.outbox.unacked() == 3
    assert [e.seq for e in camera.outbox.take_due(now=1e12)] == [3, 4, 6]


def test_a_forged_or_malformed_ack_is_ignored_with_a_log_line(tmp_path, broker, parts, caplog):
    camera = parts(Camera, tmp_path, broker.port, delivery="ack", resend_s=300)
    acker = parts(Acker, broker.port)
    acker.until_heard(camera)
    camera.add(4)
    assert wait_until(lambda: camera.outbox.unacked() == 4, 10)
    other = messages.ack_payloads(VENUE, "cam-2", "agg-test", [0, 1, 2, 3])[0]  # another camera's ranges
    body = json.loads(messages.ack_payloads(VENUE, CAMERA, "agg-test", [0])[0])
    bad = [b"not json", other, json.dumps({**body, "ranges": [[3, 3], [0, 1]]}).encode(),
           json.dumps({**body, "ranges": [[0, 2 ** 60]]}).encode(), json.dumps({**body, "extra": 1}).encode()]
    with caplog.at_level(logging.WARNING, logger="emo7ion.edge.publish"):
        for forged in bad:
            acker.send(forged)
        acker.ack([3])  # a good one after them: the link still works
        assert wait_until(lambda: camera.outbox.depth() == 3, 10)
    assert caplog.text.count("ignored an acknowledgement") == len(bad), caplog.text
    assert [e.seq for e in camera.outbox.take_due(now=1e12)] == [0, 1, 2], "nothing lost to the bad ones"


def test_auto_mode_drains_on_puback_while_no_aggregator_acks(tmp_path, broker, parts):
    recorder = parts(Recorder, broker.port, COUNTS)
    camera = parts(Camera, tmp_path, broker.port)
    acker = parts(Acker, broker.port)
    camera.add(20)
    assert wait_until(lambda: camera.outbox.depth() == 0, 10), "an aggregator that never acks: no disk fill"
    assert wait_until(lambda: len(sends(recorder)) == 20, 5) and not camera.outbox.acks_seen
    # an aggregator that acknowledges appears: from now on windows wait for it
    assert wait_until(lambda: acker.ack([0]) or camera.outbox.acks_seen, 10, interval=0.2)
    camera.add(2)
    assert wait_until(lambda: camera.outbox.unacked() == 2, 10)
    acker.ack([20, 21])
    assert wait_until(lambda: camera.outbox.depth() == 0, 10)


def test_the_unacked_bound_releases_the_oldest_and_counts_them(tmp_path, broker, parts, caplog):
    camera = parts(Camera, tmp_path, broker.port, delivery="ack", max_unacked=4, resend_s=300)
    with caplog.at_level(logging.WARNING, logger="emo7ion.edge.outbox"):
        camera.add(10)
        assert wait_until(lambda: not camera.outbox.pending() and camera.outbox.depth() == 4, 10)
    assert [e.seq for e in camera.outbox.take_due(now=1e12)] == [6, 7, 8, 9], "the newest kept"
    assert camera.outbox.take_dropped() == 6, "released windows are reported as outbox_dropped"
    assert "max_unacked" in caplog.text


def test_a_new_connection_resends_one_probe_then_the_rest_once_an_aggregator_acks(tmp_path, broker, parts):
    """The broker restarts without its store (as after a SIGKILL): what it took is gone. The camera re-sends on
    the new connection, one window while nobody acks (the aggregator may be away, its queue must not double),
    the rest as soon as an ack shows an aggregator is there."""
    recorder = parts(Recorder, broker.port, COUNTS)
    camera = parts(Camera, tmp_path, broker.port, delivery="ack", resend_s=20, resend_max_s=300)
    acker = parts(Acker, broker.port)
    acker.until_heard(camera)
    camera.add(5)
    assert wait_until(lambda: camera.outbox.unacked() == 5, 10) and wait_until(lambda: len(sends(recorder)) == 5, 5)
    broker.stop()
    restarted = start_plain_broker(tmp_path / "broker", port=broker.port)
    try:
        assert wait_until(lambda: camera.publisher.connected.is_set() and recorder.client.is_connected(), 15)
        assert wait_until(lambda: sum(sends(recorder).values()) == 6, 10), "one probe right after reconnecting"
        assert sends(recorder)[0] == 2, "the oldest first"
        assert not wait_until(lambda: sum(sends(recorder).values()) > 6, 1.5), "nothing more while nobody acks"
        assert wait_until(lambda: acker.client.is_connected(), 10)
        acker.ack([0])
        assert wait_until(lambda: all(sends(recorder)[seq] == 2 for seq in range(1, 5)), 10), sends(recorder)
        acker.ack([1, 2, 3, 4])
        assert wait_until(lambda: camera.outbox.depth() == 0, 10)
    finally:
        restarted.stop()


def test_metrics_show_each_cameras_outbox_from_its_health(live_aggregator):
    live = live_aggregator
    health = messages.Health(venue=VENUE, camera=CAMERA, ts=dt.datetime.now(dt.UTC), fps=2.0, inference_ms=5.0,
                             skipped_frames=0, outbox_depth=7, outbox_dropped=3, uptime_s=10.0, source_ok=True)
    live.camera.publish(messages.camera_topic(VENUE, CAMERA, "health"), messages.health_payload(health),
                        qos=1).wait_for_publish(5)
    labels = f'{{venue="{VENUE}",camera="{CAMERA}"}}'
    assert wait_until(lambda: f"emo7ion_camera_outbox_dropped{labels} 3" in live.get("/metrics").text, 10)
    assert f"emo7ion_camera_outbox_depth{labels} 7" in live.get("/metrics").text


@pytest.mark.skipif(not CROWD.is_dir(), reason=f"crowd sample photos not found at {CROWD}")
def test_end_to_end_a_broker_that_lost_what_it_took_still_loses_no_window(tmp_path, crowd):
    """A real agent (detector, classifier, outbox in the default auto mode), a real aggregator on SQLite and a
    real Mosquitto without persistence. The aggregator stops (its session keeps queueing on the broker), the
    broker restarts and loses that queue and the session, the aggregator comes back: every window the agent made
    is stored exactly once and its outbox ends empty, because what the broker took waited for an ack."""
    from emo7ion.aggregator.config import load as aggregator_load
    from emo7ion.aggregator.service import Aggregator
    from emo7ion.edge import config as edge_config
    from emo7ion.edge.agent import Agent

    broker = start_plain_broker(tmp_path / "broker")
    settings = {"broker": f"mqtt://127.0.0.1:{broker.port}", "db": str(tmp_path / "agg.sqlite"), "port": 0,
                "offline_after_s": 3600}
    aggregator = Aggregator(aggregator_load(None, settings, environ={})).start()
    outbox = tmp_path / "outbox.sqlite"
    agent = Agent(edge_config.load(None, {
        "venue": VENUE, "camera": CAMERA, "window_s": 1.0, "track": {"min_frames": 1}, "health_interval_s": 1.0,
        "source": {"kind": "images", "path": str(crowd), "fps": 4.0},
        "broker": {"url": f"mqtt://127.0.0.1:{broker.port}", "reconnect_min_s": 1, "reconnect_max_s": 1},
        "outbox": {"path": str(outbox), "resend_s": 2, "resend_max_s": 4}}, environ={}))
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    db = tmp_path / "agg.sqlite"
    try:
        assert wait_until(lambda: len(stored_keys(db)) >= 3 and agent.outbox.acks_seen, 60), "acks switch auto on"
        aggregator.stop()
        away_from = windows_produced(outbox)
        assert wait_until(lambda: agent.outbox.unacked() >= 3, 30), "taken by the broker, kept for an ack"
        broker.stop()  # no persistence: the windows queued for the aggregator are gone, and its session
        broker = start_plain_broker(tmp_path / "broker", port=broker.port)
        aggregator = Aggregator(aggregator_load(None, settings, environ={})).start()
        back_at = windows_produced(outbox)
        assert wait_until(lambda: {seq for *_, seq in stored_keys(db)} >= set(range(back_at + 2))
                          and agent.outbox.depth() == 0, 60), "the lost windows re-sent and stored"
    finally:
        agent.stop.set()
        thread.join(timeout=60)
        produced = windows_produced(outbox)
        try:
            assert wait_until(lambda: len(stored_keys(db)) >= produced, 15)
        finally:
            aggregator.stop()
            broker.stop()
    assert stored_keys(db) == [(VENUE, CAMERA, seq) for seq in range(produced)], "every window, each once"
    assert Outbox(outbox).depth() == 0, "the outbox ends empty"
    assert back_at > away_from + 2, "windows were made while the aggregator was away"


def test_through_the_production_acl_a_camera_hears_its_own_acks(tmp_path):
    """The broker as `emo7ion broker init` makes it (its ACL: aggregators write ack topics, a camera reads only
    its own) with a real aggregator: the camera's publisher, on its own account, drains its outbox by acks."""
    from mqtt_helpers import skip_module_without_secured_broker_tools

    from emo7ion.aggregator.config import load as aggregator_load
    from emo7ion.aggregator.service import Aggregator
    from emo7ion.broker_config import add_aggregator, add_camera, init_broker
    from emo7ion.broker_config.runner import free_port
    from emo7ion.core import emotions

    skip_module_without_secured_broker_tools()
    layout = init_broker(tmp_path / "broker", free_port(), free_port(), dev=True)
    central, account = add_aggregator(tmp_path / "broker", "central"), add_camera(tmp_path / "broker", VENUE, CAMERA)
    mosquitto = layout.mosquitto().start()
    service = Aggregator(aggregator_load(None, {
        "broker": f"mqtt://127.0.0.1:{layout.port}", "username": central.username, "password": central.password,
        "db": str(tmp_path / "agg.sqlite"), "port": 0, "offline_after_s": 3600}, environ={})).start()
    outbox = Outbox(tmp_path / "outbox.sqlite", delivery="ack", resend_s=300)
    stop = threading.Event()
    publisher = Publisher(VENUE, CAMERA, BrokerConfig(url=f"mqtt://127.0.0.1:{layout.port}", username=account.username,
                                                      password=account.password), outbox, MODEL, stop_event=stop)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)

    def window(seq: int) -> bytes:
        counts = {label: 0 for label in emotions.LABELS} | {"happy": 3, "neutral": 1}
        return messages.window_payload(messages.Window(
            venue=VENUE, camera=CAMERA, zone=None, seq=seq, start=start + dt.timedelta(seconds=10 * seq),
            end=start + dt.timedelta(seconds=10 * seq + 10), frames=20, faces=4, counts=counts, mean_confidence=0.8,
            model=MODEL))

    try:
        publisher.start()
        for _ in range(5):
            outbox.add(COUNTS, window)
        publisher.wake()
        assert wait_until(lambda: outbox.depth() == 0, 20), f"{outbox.unacked()} taken and never acknowledged"
        assert outbox.acks_seen and [key[2] for key in stored_keys(tmp_path / "agg.sqlite")] == [0, 1, 2, 3, 4]
    finally:
        stop.set()
        publisher.stop(flush_timeout=0.5)
        outbox.close()
        service.stop()
        mosquitto.stop()
