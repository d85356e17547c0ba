"""Test helpers: a throwaway anonymous Mosquitto on a free loopback port, and a subscriber that records."""

from __future__ import annotations

import getpass
import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from emo7ion.broker_config.runner import BrokerError, Mosquitto, find_tool, free_port
from helpers import wait_until


def skip_module_without_secured_broker_tools() -> None:
    """Skip the calling test module when mosquitto, mosquitto_passwd or openssl is missing."""
    try:
        for tool in ("mosquitto", "mosquitto_passwd"):
            find_tool(tool)
        find_tool("openssl", package="openssl")
    except BrokerError as missing:
        pytest.skip(str(missing), allow_module_level=True)


def start_plain_broker(folder: Path, port: int | None = None, persistence: bool = False,
                       save_every_change: bool = False) -> Mosquitto:
    """A loopback-only, anonymous broker (the edge tests exercise the agent, not authentication)."""
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    # Run as whoever runs the tests: as root, mosquitto would otherwise switch to the 'mosquitto' user and
    # then fail to write its persistence file in our folder (sessions would silently not survive a restart).
    lines = [f"user {getpass.getuser()}", f"listener {port} 127.0.0.1", "allow_anonymous true",
             f"persistence {str(persistence).lower()}",
             f"persistence_location {folder}/", "max_queued_messages 100000"]
    if save_every_change:  # write the session store after every queued message: survives a SIGKILL
        lines += ["autosave_interval 1", "autosave_on_changes true"]
    config = folder / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    return Mosquitto(config, port, folder / "mosquitto.log").start()


class Recorder:
    """Subscribes (MQTT 5, QoS 1) and keeps every message; ``wait_for`` polls with a deadline."""

    def __init__(self, port: int, topic: str = "emo7ion/#", client_id: str = "test-recorder",
                 persistent: bool = False):
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        properties = None
        if persistent:  # the broker keeps our subscription and queues messages while we are away
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port, clean_start=not persistent, properties=properties)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def bodies(self, kind: str) -> list[dict]:
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/" + kind)]

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        return wait_until(lambda: predicate(self), timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
