"""The aggregator's side of acknowledged delivery (issue 18), on a real Mosquitto with the real ACL and a real
aggregator on SQLite: once a batch committed, each camera is told on its own ack topic which of its windows are
finished with (stored, duplicates, refused for good), in one message per camera per batch; a camera reads only its
own acks and can write none (a stolen camera password cannot make another camera drop windows); the aggregator
skips ack topics it receives; and an older broker directory, whose ACL lacks the ack rules, keeps serving until
`emo7ion broker migrate-acl` adds them."""

from __future__ import annotations

import datetime as dt
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import paho.mqtt.client as mqtt
import pytest
from mqtt_helpers import skip_module_without_secured_broker_tools

from emo7ion.aggregator import config as aggregator_config
from emo7ion.aggregator.service import Aggregator
from emo7ion.broker_config import acl, add_aggregator, add_camera, add_viewer, init_broker
from emo7ion.broker_config.runner import free_port
from emo7ion.core import emotions, messages
from helpers import stored_keys, wait_until

skip_module_without_secured_broker_tools()

EXE = Path(sys.executable).parent / "emo7ion"
MODEL = {"sha256": "0" * 64, "version": "test"}
T0 = time.time() - 600  # the windows' time line: each camera's seq n spans T0 + 10n .. T0 + 10n + 10


def window(venue: str, camera: str, seq: int, start: float | None = None, length: float = 10.0) -> bytes:
    start = T0 + 10 * seq if start is None else start
    counts = {label: 0 for label in emotions.LABELS} | {"happy": 3, "neutral": 1}
    return messages.window_payload(messages.Window(
        venue=venue, camera=camera, zone=None, seq=seq, start=dt.datetime.fromtimestamp(start, dt.UTC),
        end=dt.datetime.fromtimestamp(start + length, dt.UTC), frames=20, faces=4, counts=counts,
        mean_confidence=0.8, model=MODEL))


class Camera:
    """A camera's own MQTT 5 client (its account's credentials) that records what it reads and each PUBACK."""

    def __init__(self, port: int, credentials, venue: str, camera: str, read: tuple[str, ...] = ()):
        self.venue, self.camera = venue, camera
        self.received: list[tuple[str, bytes]] = []
        self.pubacks: dict[int, mqtt.ReasonCode] = {}
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=messages.camera_client_id(venue, camera))
        self.client.username_pw_set(*credentials)
        self.client.max_inflight_messages_set(100)
        topics = read or (messages.ack_topic(venue, camera),)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, bytes(m.payload)))
        self.client.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10), f"{camera} did not subscribe"

    def send(self, payload: bytes, topic: str | None = None) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic or messages.camera_topic(self.venue, self.camera, "counts"), payload, qos=1)

    def acks(self) -> list[messages.Ack]:
        return [messages.parse_ack(topic, payload) for topic, payload in self.received
                if messages.is_ack_topic(topic)]

    def acked(self) -> set[int]:
        return {seq for ack in self.acks() for low, high in ack.ranges for seq in range(low, high + 1)}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def venue(tmp_path):
    """A development-profile broker (the production ACL) with two aggregator accounts (each its own session),
    two cameras and a viewer."""
    directory = tmp_path / "broker"
    layout = init_broker(directory, free_port(), free_port(), dev=True)
    users = {"aggregator": add_aggregator(directory, "central"), "pool": add_aggregator(directory, "pool-1"),
             "cam-1": add_camera(directory, "hall", "cam-1"),
             "cam-2": add_camera(directory, "hall", "cam-2"), "viewer": add_viewer(directory, "wall")}
    mosquitto = layout.mosquitto().start()
    yield SimpleNamespace(layout=layout, users=users, mosquitto=mosquitto, port=layout.port, folder=tmp_path)
    mosquitto.stop()


def start_aggregator(venue, account: str = "aggregator", **settings) -> Aggregator:
    user = venue.users[account]
    config = aggregator_config.load(None, {
        "broker": f"mqtt://127.0.0.1:{venue.port}", "username": user.username, "password": user.password,
        "db": str(venue.folder / "agg.sqlite"), "port": 0, "offline_after_s": 3600, **settings}, environ={})
    service = Aggregator(config).start()
    assert wait_until(lambda: service.ingest.stats.connected, 10), "aggregator did not connect"
    return service


def test_stored_duplicate_and_refused_windows_are_acknowledged_in_one_message_per_batch(venue):
    service = start_aggregator(venue, batch_size=8, batch_wait_s=3.0)  # the burst below is one batch
    camera = Camera(venue.port, venue.users["cam-1"], "hall", "cam-1")
    try:
        burst = [window("hall", "cam-1", seq) for seq in range(5)]
        burst.append(window("hall", "cam-1", 2))                                # re-sent: a duplicate
        burst.append(window("hall", "cam-1", 5, start=T0 + 45))                 # overlaps seq 4: refused
        burst.append(window("hall", "cam-1", 6, start=time.time() + 3600))      # dated ahead: refused
        for info in [camera.send(payload) for payload in burst]:
            info.wait_for_publish(10)
        assert wait_until(lambda: camera.acked() >= set(range(7)), 15), camera.acks()
        stats = service.ingest.stats
        assert stats.stored == 5 and stats.duplicates == 1, stats
        assert stats.rejected == {"overlap": 1, "future": 1}, stats.rejected
        assert [key[2] for key in stored_keys(service.config.db)] == [0, 1, 2, 3, 4], "each window stored once"
        acks = camera.acks()
        assert [ack.ranges for ack in acks] == [((0, 6),)], "one message for the camera's batch, as ranges"
        assert acks[0].aggregator == venue.users["aggregator"].username and acks[0].camera == "cam-1"
        assert stats.acks_sent == 1 and stats.windows_acked == 7
        metrics = httpx.get(service.url + "/metrics", timeout=10).text
        assert "emo7ion_acks_sent_total 1" in metrics and "emo7ion_windows_acked_total 7" in metrics

        # The camera missed nothing, but re-sends a window whose ack it lost: a duplicate, acknowledged again.
        camera.send(window("hall", "cam-1", 3)).wait_for_publish(10)
        assert wait_until(lambda: len(camera.acks()) == 2, 10)
        assert camera.acks()[1].ranges == ((3, 3),)
        assert stats.duplicates == 2 and stats.stored == 5
        assert [key[2] for key in stored_keys(service.config.db)] == [0, 1, 2, 3, 4]
    finally:
        camera.close()
        service.stop()


def test_a_camera_reads_only_its_own_acks_and_cannot_write_any(venue):
    """The attacker holds cam-1's password: it subscribes to every ack topic and forges acks for cam-2 (which
    would make cam-2 delete windows no aggregator stored) and for itself. The broker delivers neither."""
    service = start_aggregator(venue)
    attacker = Camera(venue.port, venue.users["cam-1"], "hall", "cam-1",
                      read=("emo7ion/v1/+/+/ack", messages.ack_topic("hall", "cam-2"), "emo7ion/#"))
    victim = Camera(venue.port, venue.users["cam-2"], "hall", "cam-2")
    try:
        forged = [attacker.send(payload, topic=messages.ack_topic("hall", camera))
                  for camera in ("cam-2", "cam-1")
                  for payload in messages.ack_payloads("hall", camera, "aggregator.central", range(0, 1000))]
        for info in forged:
            info.wait_for_publish(10)
        victim.send(window("hall", "cam-2", 0)).wait_for_publish(10)
        attacker.send(window("hall", "cam-1", 0)).wait_for_publish(10)
        assert wait_until(lambda: victim.acked() == {0} and attacker.acked() == {0}, 15), (victim.acks(),
                                                                                            attacker.acks())
        time.sleep(1.0)  # anything else the broker would deliver has arrived by now
        assert [(ack.camera, ack.ranges) for ack in victim.acks()] == [("cam-2", ((0, 0),))], "no forged ack"
        assert {topic for topic, _ in attacker.received} == {messages.ack_topic("hall", "cam-1")}, \
            "only its own ack topic: not cam-2's, nothing else under emo7ion/"
        assert {ack.ranges for ack in attacker.acks()} == {((0, 0),)}, "the aggregator's ack (once a matching "\
            "subscription), never its own forgery"
        assert all(attacker.pubacks[info.mid].is_failure for info in forged), "the broker refused the forgeries"
        assert service.ingest.stats.rejected == {}, "a refused forgery never reaches the aggregator"
    finally:
        attacker.close()
        victim.close()
        service.stop()


def test_ack_topics_reaching_the_aggregator_are_skipped_not_rejected(venue):
    """A plain subscription leaves our own acks out (MQTT 5 no local); a shared one cannot, and skips them."""
    camera = Camera(venue.port, venue.users["cam-1"], "hall", "cam-1")
    try:
        service = start_aggregator(venue)
        camera.send(window("hall", "cam-1", 0)).wait_for_publish(10)
        assert wait_until(lambda: camera.acked() == {0}, 10)
        time.sleep(1.0)
        stats = service.ingest.stats
        assert (stats.received, stats.own_output) == (1, 0), "no local: neither our ack nor our mood came back"
        service.stop()
        service = start_aggregator(venue, "pool", shared_group="pool")
        for seq in (1, 2):
            camera.send(window("hall", "cam-1", seq)).wait_for_publish(10)
            assert wait_until(lambda seq=seq: seq in camera.acked(), 10)
        stats = service.ingest.stats
        assert wait_until(lambda: stats.own_output >= 2, 10), "our two acks came back"
        assert stats.received == 2 and stats.stored == 2 and stats.rejected == {} and stats.acks_sent == 2
        assert "emo7ion_own_output_skipped_total 2" in httpx.get(service.url + "/metrics", timeout=10).text
        service.stop()
    finally:
        camera.close()


def test_aggregators_sharing_a_subscription_each_acknowledge_what_they_stored(venue):
    """Two aggregators on one $share group and one database: each acknowledges its own share, and together every
    window; the camera's acks name both."""
    first = start_aggregator(venue, shared_group="pool", db=str(venue.folder / "shared.sqlite"))
    second = start_aggregator(venue, "pool", shared_group="pool", db=str(venue.folder / "shared.sqlite"))
    camera = Camera(venue.port, venue.users["cam-1"], "hall", "cam-1")
    try:
        for seq in range(20):
            camera.send(window("hall", "cam-1", seq)).wait_for_publish(10)
        assert wait_until(lambda: camera.acked() == set(range(20)), 20), sorted(camera.acked())
        shares = [service.ingest.stats.windows_acked for service in (first, second)]
        assert all(shares) and sum(shares) == 20, shares
        assert [service.ingest.stats.stored for service in (first, second)] == shares
        assert {ack.aggregator for ack in camera.acks()} == {venue.users["aggregator"].username,
                                                             venue.users["pool"].username}
        assert [key[2] for key in stored_keys(venue.folder / "shared.sqlite")] == list(range(20))
    finally:
        camera.close()
        first.stop()
        second.stop()


def test_ack_off_publishes_none(venue):
    service = start_aggregator(venue, ack=False)
    camera = Camera(venue.port, venue.users["cam-1"], "hall", "cam-1")
    try:
        camera.send(window("hall", "cam-1", 0)).wait_for_publish(10)
        assert wait_until(lambda: service.ingest.stats.stored == 1, 10)
        time.sleep(1.0)
        assert camera.acks() == [] and service.ingest.stats.acks_sent == 0
    finally:
        camera.close()
        service.stop()


# ---- an older broker directory -------------------------------------------------------------------------------

def _as_before_issue_18(acl_file: Path) -> str:
    """The ACL file as `broker init` and `add-*` wrote it before acks: without the ack lines."""
    text = "".join(line for line in acl_file.read_text().splitlines(keepends=True) if "/ack" not in line)
    acl_file.write_text(text)
    return text


def test_an_old_acl_keeps_serving_and_migrate_acl_adds_the_ack_rules(venue):
    venue.mosquitto.stop()  # a restart, not a SIGHUP: the old rules are in force before anyone connects
    old = _as_before_issue_18(venue.layout.acl)
    venue.mosquitto.start()
    service = start_aggregator(venue)
    camera = Camera(venue.port, venue.users["cam-1"], "hall", "cam-1")
    try:
        camera.send(window("hall", "cam-1", 0)).wait_for_publish(10)
        assert wait_until(lambda: service.ingest.stats.acks_sent == 1, 10)
        time.sleep(1.0)
        assert camera.acks() == [], "the old ACL refuses the aggregator's ack"
        assert service.ingest.stats.disconnects == 0 and service.ingest.stats.connected, "and nothing else breaks"

        mode = stat.S_IMODE(venue.layout.acl.stat().st_mode)
        dry = subprocess.run([str(EXE), "broker", "migrate-acl", str(venue.layout.directory), "--dry-run"],
                             capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, dry.stderr
        assert "would add 4 rule(s) for 4 user(s)" in dry.stdout and venue.layout.acl.read_text() == old
        result = subprocess.run([str(EXE), "broker", "migrate-acl", str(venue.layout.directory)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "added 4 rule(s) for 4 user(s)" in result.stdout, result.stdout
        assert "camera.hall.cam-1: topic read emo7ion/v1/hall/cam-1/ack" in result.stdout
        assert "aggregator.central: topic write emo7ion/v1/+/+/ack" in result.stdout and "SIGHUP" in result.stdout
        assert stat.S_IMODE(venue.layout.acl.stat().st_mode) == mode
        again = subprocess.run([str(EXE), "broker", "migrate-acl", str(venue.layout.directory)],
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and "up to date, nothing changed" in again.stdout, again.stdout

        venue.mosquitto.reload()  # SIGHUP, handled by the broker in its own time: re-send until acknowledged

        def acknowledged() -> bool:
            if 1 not in camera.acked():
                camera.send(window("hall", "cam-1", 1))  # after the first, a duplicate: acknowledged again
            return 1 in camera.acked()

        assert wait_until(acknowledged, 15, interval=1.0), "acks flow once the broker reloaded"
    finally:
        camera.close()
        service.stop()


def test_migrating_the_acl_text_adds_only_what_each_account_lacks():
    before = "\n".join([
        "# header", "", "# camera hall/cam-1 (added x)", "user camera.hall.cam-1",
        "topic write emo7ion/v1/hall/cam-1/counts", "topic write emo7ion/v1/hall/cam-1/status",
        "topic write  emo7ion/v1/hall/cam-1/health", "", "# someone's own", "user ops", "topic readwrite #", "",
        "# aggregator central", "user aggregator.central",
        *(rule for rule in acl.aggregator_rules() if "/ack" not in rule)]) + "\n"
    text, added = acl.migrated(before)
    assert added == {"camera.hall.cam-1": ["topic read emo7ion/v1/hall/cam-1/ack"],
                     "aggregator.central": ["topic write emo7ion/v1/+/+/ack"]}
    assert text.splitlines()[7] == "topic read emo7ion/v1/hall/cam-1/ack", "right after the block's last rule"
    assert [line for line in text.splitlines() if line not in before.splitlines()] == [
        "topic read emo7ion/v1/hall/cam-1/ack", "topic write emo7ion/v1/+/+/ack"], "nothing else changed"
    assert acl.migrated(text) == (text, {}), "idempotent"


def test_a_fresh_directory_needs_no_migration(tmp_path):
    layout = init_broker(tmp_path / "broker", free_port(), free_port(), dev=True)
    add_camera(layout.directory, "hall", "cam-1")
    add_aggregator(layout.directory, "central")
    assert acl.migrate(layout.acl) == {}
