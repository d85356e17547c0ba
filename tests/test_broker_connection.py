"""The one broker-connection recipe (core/service/broker_connection.py): URL checks with default ports, and a
client that really connects to Mosquitto with its id and credentials and leaves its will when it vanishes."""

from __future__ import annotations

import threading

import pytest
from mqtt_helpers import Recorder, start_plain_broker

from emo7ion.core.service.broker_connection import BrokerAddress, Will, make_client
from emo7ion.core.service.settings import ConfigError


@pytest.mark.parametrize("url, address", [
    ("mqtt://broker.local", BrokerAddress("broker.local", 1883, False)),
    ("mqtts://broker.local", BrokerAddress("broker.local", 8883, True)),
    ("mqtts://10.0.0.5:9883", BrokerAddress("10.0.0.5", 9883, True)),
    ("mqtt://[::1]:1884", BrokerAddress("::1", 1884, False)),
])
def test_urls_and_default_ports(url, address):
    assert BrokerAddress.parse(url) == address


@pytest.mark.parametrize("url", ["http://x", "mqtt://", "broker.local:1883", "mqtt://x:99999", "mqtt://x:port", ""])
def test_bad_urls_name_the_key(url):
    with pytest.raises(ConfigError, match=r"^broker\.url "):
        BrokerAddress.parse(url)
    with pytest.raises(ConfigError, match=r"^broker "):
        BrokerAddress.parse(url, "broker")


def test_client_connects_and_its_will_is_published_when_it_vanishes(tmp_path):
    broker = start_plain_broker(tmp_path / "broker")
    recorder = Recorder(broker.port, "test/#")
    connected = threading.Event()
    client = make_client("recipe-test", BrokerAddress("127.0.0.1", broker.port, False), reconnect_s=(1, 2),
                         will=Will("test/recipe/status", b"offline"))
    client.on_connect = lambda c, u, f, reason, p: connected.set() if not reason.is_failure else None
    try:
        client.connect("127.0.0.1", broker.port, keepalive=5)
        client.loop_start()
        assert connected.wait(10)
        client.loop_stop()
        client.socket().close()  # gone without a DISCONNECT: the broker sends the will
        assert recorder.wait_for(lambda r: any(t == "test/recipe/status" and p == b"offline"
                                               for t, p, _ in r.messages), 20)
    finally:
        recorder.close()
        broker.stop()
