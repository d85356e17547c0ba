"""A camera is not a weapon (issue 12): each attack from the hostile tester's probe, run against a real
Mosquitto made by ``init_broker`` (with its accounts and ACL), a real aggregator on SQLite and real agents'
code, asserting the outcome: the aggregator stays connected, nothing acknowledged is lost, the mood moves
no further than one camera's share, and what is refused is counted.

Sizes are small enough for seconds; ``EMO7ION_PROBE_SCALE=1`` runs the probe's own sizes (docs/security.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import paho.mqtt.client as mqtt
import pytest
from mqtt_helpers import skip_module_without_secured_broker_tools, start_plain_broker

from emo7ion.aggregator import config as aggregator_config
from emo7ion.aggregator.service import Aggregator
from emo7ion.broker_config import add_aggregator, add_camera, add_viewer, init_broker
from emo7ion.broker_config.runner import find_tool, free_port
from emo7ion.core import emotions, messages
from emo7ion.edge.config import BrokerConfig
from emo7ion.edge.outbox import Outbox, OutboxError
from emo7ion.edge.publish import Publisher
from helpers import stored_keys, wait_until

skip_module_without_secured_broker_tools()

PROBE = os.environ.get("EMO7ION_PROBE_SCALE") == "1"
BURST = 30_000 if PROBE else 10_500      # one camera's burst; the old broker queue held 10,000
HONEST = 300 if PROBE else 60            # an honest camera's windows meanwhile
STALLED = 31_750 if PROBE else 1_500     # windows sent while the aggregator's disk is full: 15 times its
                                         # queue, so the broker holds them (its count limit: BURST's test)
SLOW = 900.0  # seconds at most for the large sends and stores (seconds on an idle machine)
MODEL = {"sha256": "0" * 64, "version": "test"}
HAPPY = {"happy": 9, "neutral": 1}
ANGRY = {"angry": 8, "sad": 2}


# ---- a venue: broker with accounts, aggregator, cameras -----------------------------------------------------

@pytest.fixture
def venue(tmp_path):
    """A development-profile broker (the production limits and the same ACL) with an aggregator account,
    a hostile camera hall/cam-1, an honest hall/cam-2 and an honest annex/cam-2 (same camera id)."""
    directory = tmp_path / "broker"
    port, tls_port = free_port(), free_port()
    layout = init_broker(directory, port, tls_port, dev=True)
    users = {"aggregator": add_aggregator(directory, "central"), "attacker": add_camera(directory, "hall", "cam-1"),
             "honest": add_camera(directory, "hall", "cam-2"), "annex": add_camera(directory, "annex", "cam-2")}
    mosquitto = layout.mosquitto().start()
    yield SimpleNamespace(layout=layout, users=users, mosquitto=mosquitto, port=port, folder=tmp_path)
    mosquitto.stop()


def start_aggregator(venue, **settings) -> Aggregator:
    user = venue.users["aggregator"]
    config = aggregator_config.load(None, {
        "broker": f"mqtt://127.0.0.1:{venue.port}", "username": user.username, "password": user.password,
        "client_id": "emo7ion-aggregator", "db": str(venue.folder / "agg.sqlite"), "port": 0,
        "offline_after_s": 3600, **settings}, environ={})
    service = Aggregator(config).start()
    assert wait_until(lambda: service.ingest.stats.connected, 10), "aggregator did not connect"
    return service


class Camera:
    """A camera's MQTT 5 client with its own credentials; records each PUBACK's reason code."""

    def __init__(self, port: int, credentials, venue: str, camera: str, client_id: str | None = None,
                 clean_start: bool = True):
        self.venue, self.camera = venue, camera
        self.acks: dict[int, mqtt.ReasonCode] = {}
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=client_id or messages.camera_client_id(venue, camera))
        self.client.username_pw_set(*credentials)
        self.client.max_inflight_messages_set(100)
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set() if not rc.is_failure else None
        self.client.on_publish = lambda c, u, mid, rc, p: self.acks.__setitem__(mid, rc)
        self.client.connect("127.0.0.1", port, clean_start=clean_start)
        self.client.loop_start()
        assert self.connected.wait(10), f"{camera} did not connect"

    def send(self, kind: str, payload: bytes, retain: bool = False, topic: str | None = None):
        return self.client.publish(topic or messages.camera_topic(self.venue, self.camera, kind), payload, qos=1,
                                   retain=retain)

    def settle(self, infos: list, timeout: float = 60.0) -> list[mqtt.ReasonCode]:
        """Wait for every PUBACK; their reason codes."""
        for info in infos:
            info.wait_for_publish(timeout)
        assert wait_until(lambda: all(info.mid in self.acks for info in infos), 10)
        return [self.acks[info.mid] for info in infos]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def window(venue: str, camera: str, seq: int, end: float, length: float = 10.0, counts: dict | None = None,
           frames: int = 20, faces: int | None = None) -> bytes:
    full = {label: int((counts or HAPPY).get(label, 0)) for label in emotions.LABELS}
    if faces is not None:  # all of them angry
        full = {label: faces if label == "angry" else 0 for label in emotions.LABELS}
    return messages.window_payload(messages.Window(
        venue=venue, camera=camera, seq=seq, start=dt.datetime.fromtimestamp(end - length, dt.UTC),
        end=dt.datetime.fromtimestamp(end, dt.UTC), frames=frames, faces=sum(full.values()), counts=full,
        mean_confidence=0.8, model=MODEL))


def status(venue: str, camera: str, state: str, ts: dt.datetime) -> bytes:
    return messages.status_payload(messages.Status(venue=venue, camera=camera, state=state, ts=ts, agent="x",
                                                   model=MODEL))


def stored_seqs(service: Aggregator, venue: str, camera: str) -> list[int]:
    return [seq for v, c, seq in stored_keys(service.config.db) if (v, c) == (venue, camera)]


@functools.cache
def http() -> httpx.Client:
    """One kept-open client for the polled health and metrics reads: a new client costs ~0.1 s here."""
    return httpx.Client(timeout=10)


def health(service: Aggregator) -> int:
    return http().get(service.url + "/healthz").status_code


def metrics(service: Aggregator) -> str:
    return http().get(service.url + "/metrics").text


# ---- 1. client-id takeover --------------------------------------------------------------------------------

def test_a_camera_using_the_aggregators_client_id_does_not_disconnect_it(venue):
    service = start_aggregator(venue)
    honest = Camera(venue.port, venue.users["honest"], "hall", "cam-2")
    infos, samples, now = [], [], time.time()
    try:
        for attempt in range(16):  # the probe's takeover loop: the aggregator's id, with a clean start
            stolen = ("emo7ion-aggregator", "aggregator.central")[attempt % 2]
            attacker = Camera(venue.port, venue.users["attacker"], "hall", "cam-1", client_id=stolen)
            attacker.close()
            infos.append(honest.send("counts", window("hall", "cam-2", attempt, now - 300 + attempt * 10)))
            samples.append(health(service))
        assert all(code == 0 for code in honest.settle(infos)), "the broker acknowledged every honest window"
        assert wait_until(lambda: len(stored_seqs(service, "hall", "cam-2")) == 16, 15)
        assert samples == [200] * 16, samples
        assert service.ingest.stats.disconnects == 0 and service.ingest.stats.connections == 1
        assert stored_seqs(service, "hall", "cam-2") == list(range(16)), "none of the acknowledged windows lost"
    finally:
        honest.close()
        service.stop()


# ---- 2. the same camera id in two venues -------------------------------------------------------------------

def test_two_venues_cameras_with_the_same_id_do_not_kick_each_other(tmp_path):
    """On a broker that does not enforce ids (anonymous), the agents' own ids must already differ."""
    broker = start_plain_broker(tmp_path / "plain")
    publishers, losses = [], []
    try:
        for venue in ("hall", "annex"):
            outbox = Outbox(tmp_path / f"{venue}.sqlite")
            publisher = Publisher(venue, "cam-2", BrokerConfig(url=f"mqtt://127.0.0.1:{broker.port}"), outbox,
                                  MODEL)
            original = publisher.client.on_disconnect
            publisher.client.on_disconnect = lambda *a, original=original: (losses.append(a), original(*a))
            publisher.start()
            publishers.append(publisher)
        assert wait_until(lambda: all(p.connected.is_set() for p in publishers), 10)
        time.sleep(3.0)  # the probe saw 26 takeovers in 25 s: about one a second
        assert losses == [] and all(p.connected.is_set() for p in publishers)
        assert {p.client._client_id.decode() for p in publishers} == {"camera.hall.cam-2", "camera.annex.cam-2"}
    finally:
        for publisher in publishers:
            publisher.stop(flush_timeout=0)
        broker.stop()


# ---- 3. a burst beyond the old broker queue, and drops counted as missing ---------------------------------

def test_a_burst_while_the_aggregator_is_away_is_queued_whole(venue):
    service = start_aggregator(venue)
    service.stop()  # away: its persistent session queues at the broker
    attacker = Camera(venue.port, venue.users["attacker"], "hall", "cam-1")
    annex = Camera(venue.port, venue.users["annex"], "annex", "cam-2")
    now = time.time()
    try:
        burst = [attacker.send("counts", window("hall", "cam-1", seq, now - 3 - seq, length=1.0, frames=2,
                                                  counts={"happy": 1})) for seq in range(BURST)]
        honest = [annex.send("counts", window("annex", "cam-2", seq, now - 600 + seq * 2, length=2.0))
                  for seq in range(HONEST)]
        assert all(code == 0 for code in attacker.settle(burst, SLOW) + annex.settle(honest, SLOW))
    finally:
        attacker.close()
        annex.close()
    started = time.monotonic()
    service = start_aggregator(venue)
    try:
        assert wait_until(lambda: service.ingest.stats.stored >= BURST + HONEST, SLOW), service.ingest.stats
        took = time.monotonic() - started
        assert stored_seqs(service, "annex", "cam-2") == list(range(HONEST)), "honest windows lost"
        assert len(stored_seqs(service, "hall", "cam-1")) == BURST, "acknowledged burst windows lost"
        assert "emo7ion_windows_missing 0" in metrics(service)
        logging.getLogger(__name__).warning("burst %d + %d stored in %.1f s", BURST, HONEST, took)
    finally:
        service.stop()


def test_what_the_broker_drops_is_counted_missing(tmp_path):
    """Beyond any queue limit (here a tiny one) the broker drops silently: the sequence gap tells."""
    folder = tmp_path / "small-queue"
    broker = start_plain_broker(folder)
    config_file = folder / "mosquitto.conf"
    config_file.write_text(config_file.read_text().replace("max_queued_messages 100000", "max_queued_messages 50"))
    broker.stop()
    broker.start()
    settings = {"broker": f"mqtt://127.0.0.1:{broker.port}", "db": str(tmp_path / "agg.sqlite"), "port": 0,
                "offline_after_s": 3600}
    service = Aggregator(aggregator_config.load(None, settings, environ={})).start()
    assert wait_until(lambda: service.ingest.stats.connected, 10)
    camera = Camera(broker.port, ("anyone", ""), "hall", "cam-1")
    t0 = time.time() - 400
    try:
        first = [camera.send("counts", window("hall", "cam-1", seq, t0 + seq + 1, length=1.0, frames=2))
                 for seq in range(5)]
        camera.settle(first)
        assert wait_until(lambda: service.ingest.stats.stored == 5, 10)
        service.stop()
        away = [camera.send("counts", window("hall", "cam-1", seq, t0 + seq + 1, length=1.0, frames=2))
                for seq in range(5, 205)]
        assert all(code == 0 for code in camera.settle(away)), "the broker acknowledged all 200"
        service = Aggregator(aggregator_config.load(None, settings, environ={})).start()
        later = [camera.send("counts", window("hall", "cam-1", 205, t0 + 206, length=1.0, frames=2))]
        camera.settle(later)
        assert wait_until(lambda: 205 in stored_seqs(service, "hall", "cam-1"), 15)
        stored = stored_seqs(service, "hall", "cam-1")
        missing = 206 - len(stored)
        assert 0 < missing <= 200 - 40, f"the broker was to drop most of the 200: stored {len(stored)}"
        row = httpx.get(service.url + "/api/cameras", timeout=10).json()[0]
        assert row["missing"] == missing
        assert f"emo7ion_windows_missing {missing}" in metrics(service)
        assert f'emo7ion_camera_windows_missing{{venue="hall",camera="cam-1"}} {missing}' in metrics(service)
    finally:
        camera.close()
        service.stop()
        broker.stop()


# ---- 4. mood poisoning: overlaps, huge counts, dates in 9999 ------------------------------------------------

def test_overlap_future_and_oversize_floods_move_the_mood_by_one_cameras_share(venue):
    service = start_aggregator(venue, mood_window_s=300)
    honest = Camera(venue.port, venue.users["honest"], "hall", "cam-2")
    attacker = Camera(venue.port, venue.users["attacker"], "hall", "cam-1")
    now = time.time()
    try:
        honest.settle([honest.send("counts", window("hall", "cam-2", seq, now - 200 + seq * 10))
                       for seq in range(10)])
        assert wait_until(lambda: service.ingest.stats.stored == 10, 10)
        before = httpx.get(service.url + "/api/venues/hall/mood", timeout=10).json()["positivity"]

        # One real window of the attacker's, then floods: overlapping it (new seq or shifted start), counts far
        # beyond its frames, and dated in 9999 (window and status).
        end = now - 20
        flood = [attacker.send("counts", window("hall", "cam-1", 0, end, counts=ANGRY))]
        flood += [attacker.send("counts", window("hall", "cam-1", seq, end - (seq % 7) * 0.001, counts=ANGRY))
                  for seq in range(1, 400)]
        flood += [attacker.send("counts", window("hall", "cam-1", seq, now - 100 - seq, length=1.0, frames=2,
                                                   faces=100_000)) for seq in range(400, 500)]
        far = dt.datetime(9999, 1, 1, tzinfo=dt.UTC).timestamp()
        flood += [attacker.send("counts", window("hall", "cam-1", 500, far))]
        flood += [attacker.send("status", status("hall", "cam-1", "online", dt.datetime(9999, 1, 1, tzinfo=dt.UTC)),
                                retain=True)]
        assert all(code == 0 for code in attacker.settle(flood))
        stats = service.ingest.stats
        assert wait_until(lambda: sum(stats.rejected.values()) >= 501, 20), stats.rejected
        assert stats.rejected["overlap"] == 399 and stats.rejected["faces"] == 100
        assert stats.rejected["future"] == 2  # the window and the status of 9999
        assert stored_seqs(service, "hall", "cam-1") == [0]

        mood = httpx.get(service.url + "/api/venues/hall/mood", timeout=10).json()
        honest_counts = {label: 10 * HAPPY.get(label, 0) for label in emotions.LABELS}
        one_share = {label: honest_counts[label] + ANGRY.get(label, 0) for label in emotions.LABELS}
        positive = sum(one_share[label] for label in emotions.POSITIVE)
        negative = sum(one_share[label] for label in emotions.NEGATIVE)
        assert mood["faces"] == 110 and mood["positivity"] == pytest.approx((positive - negative) / 110, abs=1e-3)
        assert before == pytest.approx(0.9) and mood["positivity"] > 0.7

        # The status of 9999 was refused, so a real "offline" still counts.
        attacker.settle([attacker.send("status", status("hall", "cam-1", "offline", dt.datetime.now(dt.UTC)),
                                       retain=True)])
        assert wait_until(lambda: {c.camera: c.state for c in service.store.cameras("hall")}
                          .get("cam-1") == "offline", 10)
        text = metrics(service)
        assert 'emo7ion_messages_rejected_total{reason="overlap"} 399' in text
        assert 'emo7ion_messages_rejected_total{reason="future"} 2' in text
    finally:
        honest.close()
        attacker.close()
        service.stop()


# ---- 5. retained floods and the rejection log ---------------------------------------------------------------

def test_retained_flood_is_refused_and_rejections_are_logged_sparingly(venue, caplog):
    service = start_aggregator(venue)
    attacker = Camera(venue.port, venue.users["attacker"], "hall", "cam-1")
    try:
        junk = b"x" * 4000
        elsewhere = [attacker.send("", junk, retain=True, topic=f"emo7ion/v1/hall/cam-1/junk{i}") for i in range(2000)]
        codes = attacker.settle(elsewhere)
        assert {code.value for code in codes} == {0x87}, "not authorized: only counts, status and health"
        # Its own counts topic takes one retained message (the ACL cannot refuse retain); a reconnecting
        # aggregator is handed it again and ignores it.
        attacker.settle([attacker.send("counts", window("hall", "cam-1", 0, time.time() - 5), retain=True)])
        assert wait_until(lambda: service.ingest.stats.stored == 1, 10)
        with caplog.at_level(logging.WARNING, logger="emo7ion.aggregator.ingest"):
            started = time.monotonic()
            garbage = [attacker.send("counts", b"\xff not json") for _ in range(2000)]
            attacker.settle(garbage)
            assert wait_until(lambda: service.ingest.stats.rejected["json"] == 2000, 60)
            intervals = (time.monotonic() - started) // service.ingest.rejections.interval_s + 2
        lines = [r for r in caplog.records if r.name == "emo7ion.aggregator.ingest"]
        assert len(lines) <= service.ingest.rejections.burst * intervals, f"{len(lines)} lines for 2000 rejections"
        assert f"emo7ion_rejection_log_suppressed_total {2000 - len(lines)}" in metrics(service)
        service.stop()
        service = start_aggregator(venue)  # the same session: subscribes again and gets the retained ones
        assert wait_until(lambda: service.ingest.stats.rejected["retained"] >= 1, 10)
        assert service.ingest.stats.stored == 0 and service.ingest.stats.duplicates == 0

        retained: list[str] = []
        reader = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id="reader")
        reader.username_pw_set(*venue.users["aggregator"])
        reader.on_message = lambda c, u, m: retained.append(m.topic) if m.retain else None
        reader.on_connect = lambda c, u, f, rc, p: c.subscribe("emo7ion/v1/#", qos=1)
        reader.connect("127.0.0.1", venue.port)
        reader.loop_start()
        time.sleep(1.0)
        reader.disconnect()
        reader.loop_stop()
        cameras = {topic for topic in retained if not messages.is_mood_topic(topic)}
        assert cameras <= {messages.camera_topic("hall", "cam-1", kind) for kind in messages.KINDS}, "3 at most"
    finally:
        attacker.close()
        service.stop()


# ---- 6. a locked outbox -----------------------------------------------------------------------------------

def test_a_locked_outbox_keeps_its_pending_windows(tmp_path, caplog):
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    for _ in range(5):
        box.add("t", lambda seq: b"w%d" % seq)
    box.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another connection holds the write lock
    try:
        started = time.monotonic()
        with pytest.raises(OutboxError, match="cannot be opened.*pending windows are kept"):
            Outbox(path, open_timeout_s=1.0)
        took = time.monotonic() - started
        assert 0.9 <= took < 2.5, f"open_timeout_s=1.0 gave up after {took:.1f} s"  # SQLite's busy wait included
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not list(tmp_path.glob("*.corrupt-*")), "a locked file is not corrupt: never moved aside"
    box = Outbox(path)
    assert [e.seq for e in box.pending()] == [0, 1, 2, 3, 4] and box.add("t", lambda seq: b"") == 5


def test_an_outbox_locked_for_a_moment_opens_once_it_is_free(tmp_path):
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    box.add("t", lambda seq: b"w")
    box.close()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(1.0, lambda: (holder.execute("ROLLBACK"), holder.close())).start()
    box = Outbox(path, open_timeout_s=30.0)
    assert [e.seq for e in box.pending()] == [0] and not list(tmp_path.glob("*.corrupt-*"))


# ---- 7. a full disk at the aggregator ---------------------------------------------------------------------

def test_a_full_disk_turns_health_red_and_loses_nothing_acknowledged(venue):
    service = start_aggregator(venue, queue_size=100)  # small: the broker's queue has to hold the backlog
    honest = Camera(venue.port, venue.users["honest"], "hall", "cam-2")
    store = service.store
    now = float(int(time.time()))
    try:
        honest.settle([honest.send("counts", window("hall", "cam-2", 0, now - 1, length=1.0))])  # after the rest
        assert wait_until(lambda: service.ingest.stats.stored == 1, 10) and health(service) == 200
        with store._lock:  # SQLite now answers SQLITE_FULL, as on a full disk
            pages = store._db.execute("PRAGMA page_count").fetchone()[0]
            store._db.execute(f"PRAGMA max_page_count={pages}")
        sent = [honest.send("counts", window("hall", "cam-2", seq, now - 3 - seq, length=1.0, frames=1,
                                               counts={"happy": 1})) for seq in range(1, STALLED + 1)]
        assert all(code == 0 for code in honest.settle(sent, timeout=SLOW)), "acknowledged by the broker"
        assert wait_until(lambda: health(service) == 503, 15), "health stayed green on a full disk"
        assert httpx.get(service.url + "/healthz", timeout=10).json()["detail"]["database"].startswith("error")
        assert "emo7ion_store_writable 0" in metrics(service)
        with store._lock:  # space again
            store._db.execute("PRAGMA max_page_count=1073741823")
        assert wait_until(lambda: service.ingest.stats.stored == STALLED + 1, SLOW), service.ingest.stats
        assert stored_seqs(service, "hall", "cam-2") == list(range(STALLED + 1)), "acknowledged windows lost"
        assert health(service) == 200
    finally:
        honest.close()
        service.stop()


# ---- 8. the API -------------------------------------------------------------------------------------------

def test_api_refuses_open_binds_sends_security_headers_and_caps_streams(venue):
    with pytest.raises(aggregator_config.ConfigError, match="token"):
        aggregator_config.load(None, {"host": "0.0.0.0"}, environ={})
    assert aggregator_config.load(None, {"host": "0.0.0.0", "token": "t"}, environ={}).token == "t"
    assert aggregator_config.load(None, {"host": "0.0.0.0", "allow_no_token": True}, environ={}).allow_no_token
    service = start_aggregator(venue, max_streams=2)
    try:
        page = httpx.get(service.url + "/", timeout=10)
        assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        with httpx.Client(base_url=service.url, timeout=10) as client:
            streams = [client.stream("GET", "/api/stream", params={"venue": "hall"}) for _ in range(2)]
            opened = [stream.__enter__() for stream in streams]
            try:
                assert [response.status_code for response in opened] == [200, 200]
                third = httpx.get(service.url + "/api/stream", params={"venue": "hall"}, timeout=10)
                assert third.status_code == 503 and third.headers["retry-after"] == "10"
                assert httpx.get(service.url + "/api/venues", timeout=10).status_code == 200
            finally:
                for stream in streams:
                    stream.__exit__(None, None, None)
    finally:
        service.stop()


def test_tls_refuses_cbc_suites(venue):
    import subprocess

    def handshake(cipher: str) -> bool:
        result = subprocess.run(
            [find_tool("openssl", package="openssl"), "s_client", "-connect", f"127.0.0.1:{venue.layout.tls_port}",
             "-tls1_2", "-cipher", cipher, "-CAfile", str(venue.layout.ca_cert)],
            input="", capture_output=True, text=True, timeout=20)
        return "Cipher is " + cipher in result.stdout

    assert handshake("ECDHE-ECDSA-AES128-GCM-SHA256")
    assert not handshake("ECDHE-ECDSA-AES128-SHA") and not handshake("ECDHE-ECDSA-AES256-SHA384")


def test_broker_config_binds_ids_and_names_only_camera_topics(venue):
    text = Path(venue.layout.conf).read_text()
    assert text.count("use_username_as_clientid true") == 2, "on both listeners"
    acl = Path(venue.layout.acl).read_text()
    assert "topic write emo7ion/v1/hall/cam-1/counts" in acl and "emo7ion/v1/hall/cam-1/+" not in acl


# ---- issue 20, 1: a stolen camera buys only its own share of the mood ----------------------------------------

def people_window(venue: str, camera: str, seq: int, end: float, counts: dict, votes: dict | None,
                  length: float = 10.0, frames: int = 20) -> bytes:
    """A v2 window (people) as today's agents send it; ``votes`` None: a v1 window from the same credentials."""
    full = {label: int(counts.get(label, 0)) for label in emotions.LABELS}
    made = messages.Window(venue=venue, camera=camera, seq=seq, start=dt.datetime.fromtimestamp(end - length, dt.UTC),
                           end=dt.datetime.fromtimestamp(end, dt.UTC), frames=frames, faces=sum(full.values()),
                           counts=full, mean_confidence=0.8, model=MODEL)
    if votes is not None:
        made = dataclasses.replace(made, people=sum(votes.values()), entered=min(2, sum(votes.values())),
                                   votes={label: int(votes.get(label, 0)) for label in emotions.LABELS},
                                   in_view=min(100.0, sum(votes.values()) / 2), dwell_s=None, ended=0)
    return messages.window_payload(made)


def test_a_stolen_camera_moves_the_venue_mood_by_at_most_its_share(tmp_path):
    """Issue 20's must-show 1: three honest cameras (v2 windows, crowds of 10, 24 and 45 people, nobody angry) and
    one with stolen credentials sending the most a window may plausibly claim (10 s, 30 fps x 100 faces, every
    face and every person angry; v2 and v1 alternately) plus 2,000 stacked 10 ms windows of 100 angry faces: the
    venue's angry share, as the API serves it and as the mood topic carries it, stays within 1/4 + 0.02."""
    directory = tmp_path / "broker"
    port, tls_port = free_port(), free_port()
    layout = init_broker(directory, port, tls_port, dev=True)
    aggregator_user, viewer = add_aggregator(directory, "central"), add_viewer(directory, "wall")
    accounts = {camera: add_camera(directory, "hall", camera) for camera in ("cam-1", "cam-2", "cam-3", "cam-4")}
    mosquitto = layout.mosquitto().start()
    box = SimpleNamespace(users={"aggregator": aggregator_user}, port=port, folder=tmp_path)
    service = start_aggregator(box, mood_window_s=300)
    cameras = {camera: Camera(port, accounts[camera], "hall", camera) for camera in accounts}
    now = time.time()
    try:
        for n, camera in enumerate(("cam-2", "cam-3", "cam-4")):
            crowd = (10, 24, 45)[n]
            votes = {"happy": crowd - crowd // 4, "neutral": crowd // 4}
            cameras[camera].settle([cameras[camera].send("counts", people_window(
                "hall", camera, seq, now - 200 + seq * 10, {k: 3 * v for k, v in votes.items()}, votes))
                for seq in range(19)])
        assert wait_until(lambda: service.ingest.stats.stored == 3 * 19, 20), service.ingest.stats
        honest = httpx.get(service.url + "/api/venues/hall/mood", timeout=10).json()
        assert honest["shares"]["angry"] == 0 and honest["people_seen"] > 0

        attacker = cameras["cam-1"]
        angry = {"angry": 30_000}
        flood = [attacker.send("counts", people_window("hall", "cam-1", seq, now - 200 + seq * 10, angry,
                                                       angry if seq % 2 else None, frames=300))
                 for seq in range(19)]
        flood += [attacker.send("counts", people_window("hall", "cam-1", 100 + seq, now - 4.99, {"angry": 100},
                                                        {"angry": 100}, length=0.01, frames=1))
                  for seq in range(2000)]
        assert all(code == 0 for code in attacker.settle(flood, SLOW))
        stats = service.ingest.stats
        assert wait_until(lambda: stats.stored + sum(stats.rejected.values()) >= 3 * 19 + len(flood), SLOW), stats
        assert stats.stored >= 3 * 19 + 19, f"the attacker's maximal windows must be believable: {stats.rejected}"

        mood = httpx.get(service.url + "/api/venues/hall/mood", timeout=10).json()
        assert mood["faces"] > 100 * honest["faces"], "the attacker's face-frames dwarf the honest cameras'"
        assert mood["shares"]["angry"] <= 0.25 + 0.02, mood["shares"]
        logging.getLogger(__name__).warning(
            "stolen camera: angry share %.4f (honest %.4f), positivity %.4f -> %.4f, faces %d -> %d, stored %d, "
            "refused %s", mood["shares"]["angry"], honest["shares"]["angry"], honest["positivity"],
            mood["positivity"], honest["faces"], mood["faces"], stats.stored, dict(stats.rejected))
        recorder = _mood_reader(port, viewer)
        try:
            assert wait_until(lambda: recorder.latest is not None and recorder.latest.faces == mood["faces"], 30)
            assert recorder.latest.shares["angry"] <= 0.25 + 0.02
        finally:
            recorder.close()
    finally:
        for camera in cameras.values():
            camera.close()
        service.stop()
        mosquitto.stop()


class _mood_reader:
    """The venue's mood topic as a viewer account (a dashboard, Home Assistant) reads it."""

    def __init__(self, port: int, credentials):
        self.latest: messages.Mood | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=credentials.username)
        self.client.username_pw_set(*credentials)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(messages.mood_topic("hall"), qos=1)
        self.client.on_message = lambda c, u, m: setattr(self, "latest", messages.parse_mood(m.topic, m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---- issue 20 parts 2-4: short and stacked windows, a camera's budget, declared zones, sequence jumps ------------

STACKED = 20_000 if PROBE else 2_000  # the probe's flood: 20,000 stacked 10 ms windows


def database_bytes(service: Aggregator) -> int:
    """The SQLite file and its write-ahead log, as they take disk."""
    return sum(path.stat().st_size for path in Path(service.config.db).parent.glob(Path(service.config.db).name + "*"))


def zoned_window(venue: str, camera: str, seq: int, end: float, zone: str | None, length: float = 10.0) -> bytes:
    made = messages.parse(messages.camera_topic(venue, camera, "counts"), window(venue, camera, seq, end, length))
    return messages.window_payload(dataclasses.replace(made, zone=zone))


def test_stacked_short_and_too_many_windows_are_refused_and_counted(venue):
    """Issue 20 part 2 on a real broker: the probe's stacked 10 ms windows are refused ("short") and the database
    barely grows; 10 s windows sent by the hundred are stored only as far as the camera's budget of window time
    (here camera_backlog_s = 600 s) and real time allow ("rate"); a camera's day cap ("day_cap"); an honest camera
    meanwhile loses nothing, and /metrics counts it all."""
    service = start_aggregator(venue, camera_backlog_s=600, max_camera_windows_per_day=100)
    attacker = Camera(venue.port, venue.users["attacker"], "hall", "cam-1")
    honest = Camera(venue.port, venue.users["honest"], "hall", "cam-2")
    annex = Camera(venue.port, venue.users["annex"], "annex", "cam-2")
    now = time.time()
    try:
        honest.settle([honest.send("counts", window("hall", "cam-2", seq, now - 200 + seq * 10)) for seq in range(10)])
        assert wait_until(lambda: service.ingest.stats.stored == 10, 10)
        before = database_bytes(service)
        started = time.monotonic()
        tens = [attacker.send("counts", window("hall", "cam-1", seq, now - 300 - seq * 10)) for seq in range(300)]
        assert all(code == 0 for code in attacker.settle(tens, SLOW))
        stats = service.ingest.stats
        assert wait_until(lambda: stats.stored + stats.rejected["rate"] >= 10 + 300, 30), stats
        took = time.monotonic() - started
        stored_tens = len(stored_seqs(service, "hall", "cam-1"))
        assert 60 <= stored_tens <= 60 + int(took / 10) + 1, (stored_tens, took)
        assert stats.rejected["rate"] == 300 - stored_tens

        before, flood_started = database_bytes(service), time.monotonic()
        stacked = [attacker.send("counts", window("hall", "cam-1", 1000 + seq, now - 4.99, length=0.01, frames=1,
                                                  faces=100)) for seq in range(STACKED)]
        assert all(code == 0 for code in attacker.settle(stacked, SLOW))
        assert wait_until(lambda: stats.rejected["short"] == STACKED, SLOW), stats.rejected
        flood_s = time.monotonic() - flood_started
        grown = database_bytes(service) - before
        assert len(stored_seqs(service, "hall", "cam-1")) == stored_tens, "a stacked window was stored"

        ones = [annex.send("counts", window("annex", "cam-2", seq, now - 10 - seq, length=1.0, frames=2))
                for seq in range(150)]
        assert all(code == 0 for code in annex.settle(ones))
        assert wait_until(lambda: stats.rejected["day_cap"] == 50, 15), stats.rejected
        assert len(stored_seqs(service, "annex", "cam-2")) == 100
        assert stored_seqs(service, "hall", "cam-2") == list(range(10)), "the honest camera lost windows"

        text = metrics(service)
        assert f'emo7ion_messages_rejected_total{{reason="short"}} {STACKED}' in text
        assert f'emo7ion_messages_rejected_total{{reason="rate"}} {300 - stored_tens}' in text
        assert 'emo7ion_messages_rejected_total{reason="day_cap"} 50' in text
        assert "emo7ion_camera_windows_day_cap 100" in text
        assert 'emo7ion_camera_windows_today{venue="annex",camera="cam-2"} 100' in text
        assert f'emo7ion_camera_windows_today{{venue="hall",camera="cam-1"}} {stored_tens}' in text
        assert "emo7ion_windows_missing 0" in text
        logging.getLogger(__name__).warning(
            "part 2: %d stacked 10 ms windows refused in %.1f s, database grew %d bytes; 300 x 10 s windows in "
            "%.1f s: %d stored (600 s budget), %d refused 'rate'; 150 x 1 s: 100 stored (day cap), 50 'day_cap'",
            STACKED, flood_s, grown, took, stored_tens, 300 - stored_tens)
    finally:
        for camera in (attacker, honest, annex):
            camera.close()
        service.stop()


def _retained(port: int, credentials, seconds: float = 2.0) -> dict[str, bytes]:
    """Every retained mood topic and discovery config a fresh viewer is handed, by topic."""
    found: dict[str, bytes] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id=credentials.username)
    client.username_pw_set(*credentials)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe([("emo7ion/v1/+/mood", 1), ("emo7ion/v1/+/mood/+", 1),
                                                            ("homeassistant/sensor/+/+/config", 1)])
    client.on_message = lambda c, u, m: found.__setitem__(m.topic, bytes(m.payload)) if m.retain else None
    client.connect("127.0.0.1", port)
    client.loop_start()
    time.sleep(seconds)
    client.disconnect()
    client.loop_stop()
    return found


def test_must_show_2_zone_hopping_creates_nothing_beyond_the_declared_zones(venue):
    """Issue 20 must-show 2: hall declares cam-1 in "front" and cam-2 in "back". The stolen hall/cam-1 names a new
    zone every window (the probe: one every 2.5 s made 21 retained mood topics and 92 discovery configs), and its
    statuses name others; annex, with no declared zones, keeps its camera's first zone. A fresh viewer is handed
    retained mood topics and discovery configs for the venues and their zones only."""
    viewer = add_viewer(venue.layout.directory, "wall")
    venue.mosquitto.reload()
    service = start_aggregator(venue, venues={"hall": {"cam-1": "front", "cam-2": "back"}})
    attacker = Camera(venue.port, venue.users["attacker"], "hall", "cam-1")
    honest = Camera(venue.port, venue.users["honest"], "hall", "cam-2")
    annex = Camera(venue.port, venue.users["annex"], "annex", "cam-2")
    now = time.time()
    try:
        honest.settle([honest.send("counts", zoned_window("hall", "cam-2", seq, now - 200 + seq * 10, "back"))
                       for seq in range(5)])
        attacker.settle([attacker.send("counts", zoned_window("hall", "cam-1", 0, now - 200, "front"))])
        for round_ in range(4):  # across mood ticks (2 s), as the probe's hops were
            attacker.settle([attacker.send("counts", zoned_window("hall", "cam-1", seq, now - 200 + seq * 10,
                                                                  f"z-{seq}" if seq % 5 else "back"))
                             for seq in range(1 + round_ * 5, 6 + round_ * 5)])
            attacker.settle([attacker.send("status", messages.status_payload(messages.Status(
                venue="hall", camera="cam-1", zone=f"s-{round_}", state="online", ts=dt.datetime.now(dt.UTC),
                agent="x", model=MODEL)), retain=True)])
            annex.settle([annex.send("counts", zoned_window("annex", "cam-2", seq, now - 200 + seq * 10, f"a-{seq}"))
                          for seq in range(round_ * 3, 3 + round_ * 3)])
            time.sleep(2.5)
        stats = service.ingest.stats
        assert wait_until(lambda: stats.stored + stats.rejected["zone"] == 5 + 21 + 12, 20), stats
        assert stats.stored == 5 + 1 + 1 and stats.rejected["zone"] == 20 + 11
        assert {c.camera: c.zone for c in service.store.cameras("hall")} == {"cam-1": "front", "cam-2": "back"}
        assert [c.zone for c in service.store.cameras("annex")] == ["a-0"]

        declared = {"emo7ion/v1/hall/mood", "emo7ion/v1/hall/mood/front", "emo7ion/v1/hall/mood/back",
                    "emo7ion/v1/annex/mood", "emo7ion/v1/annex/mood/a-0"}
        assert wait_until(lambda: declared <= set(_retained(venue.port, viewer, 0.5)), 30)
        time.sleep(2 * 2.0)  # two more mood ticks: anything else would be published by now
        retained = _retained(venue.port, viewer)
        moods = {topic for topic in retained if topic.startswith("emo7ion/")}
        configs = {topic: json.loads(body) for topic, body in retained.items() if topic.startswith("homeassistant/")}
        assert moods == declared
        assert {body["state_topic"] for body in configs.values()} == declared
        assert len(configs) == 4 * len(declared)  # the four sensors of v1 windows, per venue and zone
        front = httpx.get(service.url + "/api/venues/hall/mood?zone=front", timeout=10).json()
        assert front["cameras_online"] == 1 and front["faces"] == 10  # cam-1's one window in its own zone
        assert f'emo7ion_messages_rejected_total{{reason="zone"}} {20 + 11}' in metrics(service)
        logging.getLogger(__name__).warning(
            "zone hopping: %d windows naming another zone refused; retained: %d mood topics, %d discovery configs",
            stats.rejected["zone"], len(moods), len(configs))
    finally:
        for camera in (attacker, honest, annex):
            camera.close()
        service.stop()


def test_must_show_3_a_seq_jump_counts_one_reset_and_leaves_missing_unchanged(venue):
    """Issue 20 must-show 3: two withheld windows, seq S dated 29 days ago, then S + 2,000,000 now, once set
    emo7ion_windows_missing to 1,999,999. Now missing stays what the honest camera's real gap made it, and the
    jump is one reset, counted on its own."""
    service = start_aggregator(venue)
    attacker = Camera(venue.port, venue.users["attacker"], "hall", "cam-1")
    honest = Camera(venue.port, venue.users["honest"], "hall", "cam-2")
    now = time.time()

    def withheld(seq: int, end: float) -> bytes:
        made = messages.parse(messages.camera_topic("hall", "cam-1", "counts"), window("hall", "cam-1", seq, end))
        return messages.window_payload(dataclasses.replace(made, counts=None, mean_confidence=None,
                                                           faces=2))

    try:
        honest.settle([honest.send("counts", window("hall", "cam-2", seq, now - 100 + seq * 10)) for seq in (0, 1, 3)])
        assert wait_until(lambda: service.ingest.stats.stored == 3, 10)
        assert "emo7ion_windows_missing 1" in metrics(service)
        s = 4_000_000
        attacker.settle([attacker.send("counts", withheld(s, now - 29 * 86400))])
        assert wait_until(lambda: service.ingest.stats.stored == 4, 10)
        attacker.settle([attacker.send("counts", withheld(s + 2_000_000, now - 1))])
        assert wait_until(lambda: service.ingest.stats.stored == 5, 10), service.ingest.stats
        text = metrics(service)
        assert "emo7ion_windows_missing 1" in text
        assert "emo7ion_seq_resets_total 1" in text
        assert 'emo7ion_camera_seq_resets_total{venue="hall",camera="cam-1"} 1' in text
        cameras = {row["camera"]: row for row in httpx.get(service.url + "/api/cameras", timeout=10).json()}
        assert cameras["cam-1"]["missing"] == 0 and cameras["cam-2"]["missing"] == 1
    finally:
        attacker.close()
        honest.close()
        service.stop()
