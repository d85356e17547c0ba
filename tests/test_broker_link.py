"""One broker link per service (core/service/broker_link.py), on a real Mosquitto: subscriptions and status come
back after the broker restarts, whoever asked is told of each connection, a clean stop says offline, a permanent
refusal stops the process through its stop event, a failed attempt's cause is logged once; and no module outside
core/ makes a paho client of its own."""

from __future__ import annotations

import ast
import logging
import threading
from pathlib import Path

import pytest
from mqtt_helpers import Recorder, skip_module_without_secured_broker_tools, start_plain_broker

from emo7ion.broker_config import add_camera, init_broker
from emo7ion.broker_config.runner import free_port
from emo7ion.core.service.broker_connection import BrokerSettings
from emo7ion.core.service.broker_errors import BrokerRefusedError
from emo7ion.core.service.broker_link import BrokerLink
from helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent


def _settings(port: int, **keys) -> BrokerSettings:
    return BrokerSettings(url=f"mqtt://127.0.0.1:{port}", reconnect_min_s=1, reconnect_max_s=1, **keys)


def _delivered(sender: Recorder, topic: str, payload: bytes, received: list[bytes]) -> bool:
    """Publish until the link's handler has it (its subscription is made on connect, its SUBACK a moment later)."""
    def arrived() -> bool:
        if payload not in received:
            sender.client.publish(topic, payload, qos=1)
        return payload in received

    return wait_until(arrived, 10, interval=0.3)


def _statuses(recorder: Recorder) -> list[bytes]:
    return [payload for topic, payload, _ in recorder.messages if topic == "test/link/status"]


def test_subscriptions_and_status_are_renewed_on_every_reconnect_and_a_clean_stop_says_offline(tmp_path):
    broker = start_plain_broker(tmp_path / "broker")
    stop = threading.Event()
    link = BrokerLink(_settings(broker.port), "link-test", stop, status_topic="test/link/status")
    received: list[bytes] = []
    told: list[bool] = []
    link.handle_messages(lambda client, userdata, message: received.append(bytes(message.payload)))
    link.when_connected(lambda session_present: told.append(link.connected.is_set()))
    link.subscribe("test/link/in")
    watchers = [Recorder(broker.port, "test/link/#", client_id="link-watcher")]
    try:
        link.start()
        assert _delivered(watchers[0], "test/link/in", b"one", received)
        watchers.pop().close()
        broker.stop()  # a broker without persistence: every subscription and retained message is gone
        assert wait_until(lambda: not link.connected.is_set(), 10)
        broker.start()
        assert wait_until(link.connected.is_set, 15, what="the link to reconnect")
        watchers.append(Recorder(broker.port, "test/link/#", client_id="link-watcher-2"))
        assert watchers[0].wait_for(lambda r: _statuses(r) == [b"online"], 10), "online again, retained"
        assert _delivered(watchers[0], "test/link/in", b"two", received), "the subscription was made again"
        assert told == [False, False], "told of each connection, before connected was set"
        assert link.connections == 2 and link.disconnects == 1
        link.stop()
        assert watchers[0].wait_for(lambda r: _statuses(r)[-1:] == [b"offline"], 10)
        assert link.disconnects == 1, "our own stop is not a lost connection, with or without the stop event"
        assert not stop.is_set() and link.refused is None
        link.raise_if_refused()  # nothing to raise
    finally:
        for watcher in watchers:
            watcher.close()
        link.stop()
        broker.stop()


def test_a_lost_connection_is_counted_once_and_our_own_stop_is_not(tmp_path):
    broker = start_plain_broker(tmp_path / "broker")
    stop = threading.Event()
    link = BrokerLink(_settings(broker.port), "link-lost", stop)
    gone: list[int] = []
    link.when_disconnected(lambda: gone.append(link.disconnects))
    try:
        link.start()
        assert wait_until(link.connected.is_set, 10)
        broker.stop()
        assert wait_until(lambda: gone, 10) and gone == [1], "counted before whoever asked was told"
        broker.start()
        assert wait_until(link.connected.is_set, 15)
        stop.set()
        link.stop()
        assert link.disconnects == 1 and len(gone) == 2
    finally:
        link.stop()
        broker.stop()


def test_a_failed_attempt_names_its_cause_once(caplog):
    port = free_port()  # nothing listens there
    link = BrokerLink(_settings(port), "link-nobody", threading.Event())
    with caplog.at_level(logging.DEBUG, logger="emo7ion.core.service.broker_link"):
        link.start()
        try:
            assert wait_until(lambda: len([r for r in caplog.records if "refused the connection" in r.getMessage()])
                              >= 3, 15), "paho retried at least twice"
        finally:
            link.stop()
    causes = [r for r in caplog.records if "refused the connection" in r.getMessage()]
    assert [r.levelno for r in causes][:1] == [logging.ERROR]
    assert all(r.levelno == logging.DEBUG for r in causes[1:]), "the same cause again only at DEBUG"
    assert f"broker 127.0.0.1:{port} refused the connection" in causes[0].getMessage()


def test_a_refused_password_sets_the_stop_event_and_is_raised_as_one_line(tmp_path):
    skip_module_without_secured_broker_tools()
    directory = tmp_path / "broker"
    layout = init_broker(directory, free_port(), free_port(), tls_bind="127.0.0.1")
    user, _ = add_camera(directory, "lobby", "cam1")
    mosquitto = layout.mosquitto().start()
    stop = threading.Event()
    link = BrokerLink(_settings(layout.port, username=user, password="wrong"), user, stop)
    try:
        link.start()
        assert stop.wait(15), "the process's stop event was set"
        assert not link.connected.is_set()
        with pytest.raises(BrokerRefusedError, match=f"broker 127.0.0.1:{layout.port} refused user '{user}'"):
            link.raise_if_refused()
    finally:
        link.stop()
        mosquitto.stop()


def _paho_clients_made(path: Path) -> list[int]:
    """Lines where ``path`` calls ``mqtt.Client(...)``, ``Client(...)`` imported from paho, or core's ``BulkClient``."""
    tree = ast.parse(path.read_text())
    from_paho = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and (node.module or "").startswith("paho") for alias in node.names}
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        of_mqtt = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "mqtt"
        if name == "BulkClient" or (name == "Client" and (of_mqtt or (isinstance(func, ast.Name)
                                                                      and name in from_paho))):
            lines.append(node.lineno)
    return lines


def test_no_module_outside_core_makes_a_paho_client():
    """The services go through their broker link, ``edge check`` and the benchmarks through the recipe."""
    makers = []
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in ("tests", "core", ".venv", "build") or "site-packages" in relative.parts:
            continue
        makers += [f"{relative}:{line}" for line in _paho_clients_made(path)]
    assert makers == []
    assert _paho_clients_made(ROOT / "core" / "service" / "broker_connection.py"), "the scan finds the recipe"


def test_mood_and_discovery_do_not_borrow_the_ingest():
    for name in ("mood_publisher", "discovery"):
        tree = ast.parse((ROOT / "aggregator" / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "emo7ion.aggregator.ingest" not in imported, name


def test_subscribed_says_when_what_is_published_reaches_us_and_clears_with_the_connection(tmp_path):
    """After ``subscribed`` is set, a single publish arrives (no retry); a lost connection clears it until the
    new connection's SUBACK."""
    broker = start_plain_broker(tmp_path / "broker")
    link = BrokerLink(_settings(broker.port), "link-subscribed", threading.Event())
    received: list[bytes] = []
    link.handle_messages(lambda client, userdata, message: received.append(bytes(message.payload)))
    link.subscribe("test/link/sub")
    sender = Recorder(broker.port, "test/unused", client_id="link-sender")
    try:
        assert not link.subscribed.is_set()
        link.start()
        assert link.subscribed.wait(10)
        sender.client.publish("test/link/sub", b"once", qos=1)
        assert wait_until(lambda: b"once" in received, 10)
        broker.stop()
        assert wait_until(lambda: not link.subscribed.is_set(), 10)
        broker.start()
        assert link.subscribed.wait(15)
    finally:
        sender.close()
        link.stop()
        broker.stop()
