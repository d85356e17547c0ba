"""The broker directory works with the real Mosquitto: files made by ``init_broker`` and ``add_*``, a
``mosquitto -c DIR/mosquitto.conf`` on free loopback ports, and paho MQTT 5 clients proving who may
publish and read what, over plain MQTT and TLS."""

from __future__ import annotations

import itertools
import json
import os
import pwd
import shutil
import socket
import ssl
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import paho.mqtt.client as mqtt
import pytest
from mqtt_helpers import skip_module_without_secured_broker_tools

from emo7ion.broker_config import BrokerLayout, add_aggregator, add_camera, add_viewer, init_broker
from emo7ion.broker_config.layout import MAX_PACKET_BYTES
from emo7ion.broker_config.runner import free_port
from emo7ion.cli import main
from emo7ion.core.messages import MAX_PAYLOAD_BYTES

skip_module_without_secured_broker_tools()

TIMEOUT = 5.0
NOT_AUTHORIZED = 0x87
_ids = itertools.count()


def two_ports() -> tuple[int, int]:
    port = free_port()
    tls_port = free_port()
    while tls_port == port:
        tls_port = free_port()
    return port, tls_port


class Peer:
    """One paho MQTT 5 client that records CONNACK, SUBACK, PUBACK and messages for tests to wait on."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None, *,
                 tls_ca: Path | None = None, tls_default_cas: bool = False):
        self.port = port
        self.changed = threading.Condition()
        self.connack: mqtt.ReasonCode | None = None
        self.subacks: dict[int, list[mqtt.ReasonCode]] = {}
        self.pubacks: dict[int, mqtt.ReasonCode] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.disconnect: mqtt.ReasonCode | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{os.getpid()}-{next(_ids)}",
                                  protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls_ca is not None or tls_default_cas:
            self.client.tls_set(ca_certs=str(tls_ca) if tls_ca else None)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    def _record(self, change: Callable[[], None]) -> None:
        with self.changed:
            change()
            self.changed.notify_all()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._record(lambda: setattr(self, "connack", reason_code))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._record(lambda: self.subacks.__setitem__(mid, list(reason_codes)))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._record(lambda: self.pubacks.__setitem__(mid, reason_code))

    def _on_message(self, client, userdata, message) -> None:
        self._record(lambda: self.messages.append((message.topic, message.payload)))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._record(lambda: setattr(self, "disconnect", reason_code))

    def wait(self, done: Callable[[], object], what: str) -> None:
        with self.changed:
            if not self.changed.wait_for(done, timeout=TIMEOUT):
                raise AssertionError(f"no {what} within {TIMEOUT} s")

    def connect(self) -> mqtt.ReasonCode:
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        self.wait(lambda: self.connack is not None, "CONNACK")
        return self.connack

    def subscribe(self, *topics: str) -> list[mqtt.ReasonCode]:
        result, mid = self.client.subscribe([(topic, 1) for topic in topics])
        assert result == mqtt.MQTT_ERR_SUCCESS
        self.wait(lambda: mid in self.subacks, "SUBACK")
        return self.subacks[mid]

    def publish(self, topic: str, payload: bytes = b"{}") -> mqtt.ReasonCode:
        """QoS 1, so the broker answers each message with a PUBACK and its reason code."""
        info = self.client.publish(topic, payload, qos=1)
        self.wait(lambda: info.mid in self.pubacks, f"PUBACK for {topic}")
        return self.pubacks[info.mid]

    def wait_for_message(self, topic: str) -> None:
        self.wait(lambda: topic in self.topics(), f"message on {topic}")

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory, request) -> SimpleNamespace:
    """A running production-profile broker (TLS bound to 127.0.0.1) with two cameras in venue "lobby",
    two aggregators (a client's id is its user name: one connection per account) and a viewer."""
    directory = tmp_path_factory.mktemp("broker") / "broker"
    port, tls_port = two_ports()
    layout = init_broker(directory, port, tls_port, tls_bind="127.0.0.1")
    users = {"cam1": add_camera(directory, "lobby", "cam1"), "cam2": add_camera(directory, "lobby", "cam2"),
             "aggregator": add_aggregator(directory, "central"), "replica": add_aggregator(directory, "replica"),
             "viewer": add_viewer(directory, "wall")}
    mosquitto = layout.mosquitto()
    request.addfinalizer(mosquitto.stop)
    mosquitto.start()
    return SimpleNamespace(layout=layout, users=users, mosquitto=mosquitto)


@pytest.fixture
def connect(broker):
    """``connect(user)``: a connected Peer on the plain port (``tls=True``: the TLS port with the CA)."""
    opened: list[Peer] = []

    def make(user: str, tls: bool = False) -> Peer:
        credentials = broker.users[user]
        port = broker.layout.tls_port if tls else broker.layout.port
        peer = Peer(port, *credentials, tls_ca=broker.layout.ca_cert if tls else None)
        opened.append(peer)
        reason = peer.connect()
        assert not reason.is_failure, f"{user} refused: {reason}"
        return peer

    yield make
    for peer in opened:
        peer.close()


def test_anonymous_and_wrong_passwords_are_refused(broker):
    refused = [Peer(broker.layout.port), Peer(broker.layout.port, "camera.lobby.cam1", "not-the-password"),
               Peer(broker.layout.tls_port, tls_ca=broker.layout.ca_cert)]
    try:
        for peer in refused:
            assert peer.connect().is_failure
    finally:
        for peer in refused:
            peer.close()


def test_camera_publishes_its_counts_to_plain_and_shared_aggregator_subscriptions(connect):
    everything, shared = connect("aggregator"), connect("replica")
    assert not any(code.is_failure for code in everything.subscribe("emo7ion/v1/#"))
    assert not any(code.is_failure for code in shared.subscribe("$share/grp/emo7ion/v1/+/+/+"))
    camera = connect("cam1")
    for kind in ("counts", "status", "health"):
        assert not camera.publish(f"emo7ion/v1/lobby/cam1/{kind}").is_failure
        everything.wait_for_message(f"emo7ion/v1/lobby/cam1/{kind}")
        shared.wait_for_message(f"emo7ion/v1/lobby/cam1/{kind}")


def test_camera_cannot_publish_as_another_camera_or_as_mood(connect):
    aggregator = connect("aggregator")
    aggregator.subscribe("emo7ion/v1/#")
    camera = connect("cam1")
    for topic in ("emo7ion/v1/lobby/cam2/counts", "emo7ion/v1/other/cam1/counts", "emo7ion/v1/lobby/mood",
                  "emo7ion/v1/lobby/cam1/counts/extra", "elsewhere"):
        assert camera.publish(topic).value == NOT_AUTHORIZED, topic
    # One client's messages reach a subscriber in order: once this one has arrived, the refused ones
    # would have arrived before it.
    camera.publish("emo7ion/v1/lobby/cam1/status")
    aggregator.wait_for_message("emo7ion/v1/lobby/cam1/status")
    assert aggregator.topics() == ["emo7ion/v1/lobby/cam1/status"]


def test_camera_reads_nothing(connect):
    camera = connect("cam1")
    codes = camera.subscribe("#", "emo7ion/v1/#", "emo7ion/v1/lobby/cam1/+")
    # Mosquitto 2.0.11 grants every SUBSCRIBE (the acl_file has no subscribe rules) and filters each
    # message on delivery; a broker that refuses at SUBSCRIBE answers "Not authorized" instead.
    assert all(not code.is_failure for code in codes) or all(code.value == NOT_AUTHORIZED for code in codes)
    aggregator = connect("aggregator")
    assert not aggregator.publish("emo7ion/v1/lobby/mood").is_failure
    # The broker handles the mood message (acknowledged above) before the camera's own publish below, and
    # writes to the camera's connection in that order: had either been delivered, it would be here by
    # the time the camera's PUBACK is.
    assert not camera.publish("emo7ion/v1/lobby/cam1/counts").is_failure
    assert camera.messages == []


def test_aggregator_publishes_mood_but_not_counts(connect):
    listener = connect("replica")
    listener.subscribe("emo7ion/v1/#")
    aggregator = connect("aggregator")
    assert aggregator.publish("emo7ion/v1/lobby/cam1/counts").value == NOT_AUTHORIZED
    assert aggregator.publish("emo7ion/v1/lobby/cam1/status").value == NOT_AUTHORIZED
    assert not aggregator.publish("emo7ion/v1/lobby/mood").is_failure
    assert not aggregator.publish("emo7ion/v1/lobby/mood/bar").is_failure
    listener.wait_for_message("emo7ion/v1/lobby/mood/bar")
    assert listener.topics() == ["emo7ion/v1/lobby/mood", "emo7ion/v1/lobby/mood/bar"]


def test_viewer_reads_mood_only(connect):
    viewer = connect("viewer")
    viewer.subscribe("emo7ion/v1/#")
    camera, aggregator = connect("cam1"), connect("aggregator")
    assert not camera.publish("emo7ion/v1/lobby/cam1/counts").is_failure
    assert not aggregator.publish("emo7ion/v1/lobby/mood/bar").is_failure
    viewer.wait_for_message("emo7ion/v1/lobby/mood/bar")
    assert viewer.topics() == ["emo7ion/v1/lobby/mood/bar"]
    assert viewer.publish("emo7ion/v1/lobby/mood").value == NOT_AUTHORIZED


def test_the_largest_payload_passes_and_an_oversize_packet_is_refused(connect):
    aggregator = connect("aggregator")
    aggregator.subscribe("emo7ion/v1/#")
    camera = connect("cam1")
    assert not camera.publish("emo7ion/v1/lobby/cam1/counts", b"x" * MAX_PAYLOAD_BYTES).is_failure
    aggregator.wait_for_message("emo7ion/v1/lobby/cam1/counts")
    camera.client.publish("emo7ion/v1/lobby/cam1/health", b"x" * (MAX_PACKET_BYTES + 1), qos=1)
    camera.wait(lambda: camera.disconnect is not None, "DISCONNECT")
    assert camera.disconnect.value == 0x95  # Packet too large
    # The broker dealt with the oversize packet before it saw this one; it reaches the aggregator after.
    connect("cam2").publish("emo7ion/v1/lobby/cam2/status")
    aggregator.wait_for_message("emo7ion/v1/lobby/cam2/status")
    assert aggregator.topics() == ["emo7ion/v1/lobby/cam1/counts", "emo7ion/v1/lobby/cam2/status"]


def test_tls_with_the_ca_and_not_without_it(broker, connect):
    camera = connect("cam1", tls=True)
    assert not camera.publish("emo7ion/v1/lobby/cam1/counts").is_failure
    context = ssl.create_default_context(cafile=str(broker.layout.ca_cert))
    with socket.create_connection(("127.0.0.1", broker.layout.tls_port), timeout=TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:  # the SAN names localhost too
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    stranger = Peer(broker.layout.tls_port, *broker.users["cam1"], tls_default_cas=True)
    with pytest.raises(ssl.SSLError):
        stranger.connect()


def test_a_running_broker_takes_new_and_rotated_passwords_on_reload(broker):
    first = add_camera(broker.layout.directory, "hall", "cam3")
    broker.mosquitto.reload()
    assert _connects_within(broker.layout.port, first)
    second = add_camera(broker.layout.directory, "hall", "cam3", rotate=True)
    assert second.username == first.username and second.password != first.password
    broker.mosquitto.reload()
    assert _connects_within(broker.layout.port, second)
    old = Peer(broker.layout.port, *first)
    try:
        assert old.connect().is_failure
    finally:
        old.close()


def _connects_within(port: int, credentials, timeout: float = TIMEOUT) -> bool:
    """SIGHUP is handled asynchronously: try until the broker knows the user."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        peer = Peer(port, *credentials)
        try:
            if not peer.connect().is_failure:
                return True
        finally:
            peer.close()
        time.sleep(0.05)
    return False


def test_init_writes_private_keys_and_absolute_paths(tmp_path):
    layout = init_broker(tmp_path / "b", 1883, 8883)
    for secret in (layout.passwd, layout.ca_key, layout.server_key):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert layout.passwd.read_text() == ""
    conf = layout.conf.read_text()
    assert f"password_file {layout.passwd}\n" in conf and layout.passwd.is_absolute()
    assert "allow_anonymous false\n" in conf and "listener 1883 127.0.0.1\n" in conf and "listener 8883\n" in conf
    assert f"user {pwd.getpwuid(os.geteuid()).pw_name}\n" in conf
    assert BrokerLayout.load(tmp_path / "b") == layout


def test_cli_add_camera_json_rotate_and_duplicate(tmp_path, capsys):
    directory = str(tmp_path / "b")
    assert main(["broker", "init", directory, "--dev"]) == 0
    capsys.readouterr()
    assert main(["broker", "add-camera", directory, "lobby", "cam1", "--json"]) == 0
    out = capsys.readouterr()
    created = json.loads(out.out.strip().splitlines()[-1])
    assert created["username"] == "camera.lobby.cam1" and len(created["password"]) >= 32
    assert "SIGHUP" in out.err
    assert main(["broker", "add-camera", directory, "lobby", "cam1"]) == 2
    assert "--rotate" in capsys.readouterr().err
    assert main(["broker", "add-camera", directory, "lobby", "cam1", "--rotate", "--json"]) == 0
    rotated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rotated["username"] == created["username"] and rotated["password"] != created["password"]
    assert Path(directory, "acl").read_text().count("user camera.lobby.cam1\n") == 1


def test_cli_init_refuses_an_existing_directory_without_force(tmp_path, capsys):
    directory = str(tmp_path / "b")
    assert main(["broker", "init", directory]) == 0
    add_aggregator(directory, "central")
    capsys.readouterr()
    assert main(["broker", "init", directory]) == 2
    assert "already a broker directory" in capsys.readouterr().err
    assert main(["broker", "init", directory, "--force"]) == 0
    assert Path(directory, "passwd").read_text() == ""


def test_bad_ids_are_clear_errors(tmp_path, capsys):
    directory = str(tmp_path / "b")
    init_broker(directory)
    assert main(["broker", "add-camera", directory, "Lobby/1", "cam1"]) == 2
    assert "error: venue 'Lobby/1' must be" in capsys.readouterr().err
    with pytest.raises(ValueError, match="camera 'cam#'"):
        add_camera(directory, "lobby", "cam#")
    with pytest.raises(ValueError, match="reserved"):
        add_camera(directory, "lobby", "mood")
    with pytest.raises(FileNotFoundError, match="not a broker directory"):
        add_camera(tmp_path, "lobby", "cam1")
    assert Path(directory, "passwd").read_text() == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="only root switches user")
def test_as_root_mosquitto_runs_as_the_given_user(tmp_path):
    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.skip("no mosquitto account")
    with pytest.raises(ValueError, match="cannot reach"):  # pytest's tmp folders are 0700
        init_broker(tmp_path / "b", user="mosquitto")
    parent = Path(tempfile.mkdtemp(prefix="emo7ion-broker-test-"))
    try:
        parent.chmod(0o755)
        layout = init_broker(parent / "b", *two_ports(), dev=True, user="mosquitto")
        credentials = add_camera(layout.directory, "lobby", "cam1")
        owner = pwd.getpwnam("mosquitto").pw_uid
        for path in (layout.passwd, layout.server_key, layout.data, layout.log):
            assert path.stat().st_uid == owner, path
        assert layout.ca_key.stat().st_uid == 0
        with layout.mosquitto() as mosquitto:
            status = Path(f"/proc/{mosquitto.process.pid}/status").read_text()
            assert f"Uid:\t{owner}\t" in status
            assert _connects_within(layout.port, credentials)
    finally:
        shutil.rmtree(parent)


def test_a_new_password_never_reads_as_an_option(monkeypatch):
    """token_urlsafe starts one password in 64 with '-': pasted after --password, argparse took it for a flag
    (a README deploy run failed on it)."""
    from emo7ion.broker_config import credentials

    drawn = iter(["-starts-with-a-dash", "_underscore_is_fine"])
    monkeypatch.setattr(credentials.secrets, "token_urlsafe", lambda n: next(drawn))
    assert credentials.new_password() == "_underscore_is_fine"
    monkeypatch.undo()
    assert not any(credentials.new_password().startswith("-") for _ in range(500))
