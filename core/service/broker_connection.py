"""The one recipe every service uses to reach the broker: the settings (:class:`BrokerSettings`, declared once and
embedded by the agent's and the aggregator's configs), the URL (``mqtt://`` or ``mqtts://``, default ports 1883
and 8883) and its checks, and the paho client (MQTT 5, TLS that verifies the broker, credentials, client id,
paho's reconnect backoff, the last will). The agent, the aggregator, the demo and the benchmarks differ only in
the arguments.

paho is imported when a client is made: training imports core without the MQTT extra installed.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from emo7ion.core.service import broker_errors
from emo7ion.core.service.settings import ConfigError, check_positive

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str, key: str = "broker.url") -> BrokerAddress:
        """``mqtt://host[:port]`` or ``mqtts://host[:port]``; anything else is a ConfigError naming ``key``."""
        parsed = urlparse(url)
        try:
            port = parsed.port
        except ValueError as error:
            raise ConfigError(f"{key} {url!r}: {error}") from None
        if parsed.scheme not in DEFAULT_PORTS or not parsed.hostname:
            raise ConfigError(f"{key} {url!r} must look like mqtt://host:1883 or mqtts://host:8883")
        return cls(parsed.hostname, port or DEFAULT_PORTS[parsed.scheme], parsed.scheme == "mqtts")


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes | str
    qos: int = 1
    retain: bool = True


def make_client(client_id: str, address: BrokerAddress, *, username: str = "", password: str = "",
                ca_file: str = "", reconnect_s: tuple[float, float] = (1.0, 60.0), will: Will | None = None,
                manual_ack: bool = False) -> mqtt.Client:
    """A paho client ready for ``connect_async(address.host, address.port, ...)``: its logs go to ``logging``,
    TLS verifies the broker (against ``ca_file`` or the system's CAs), reconnects back off between the two
    delays of ``reconnect_s``, and the broker publishes ``will`` when we vanish."""
    import paho.mqtt.client as mqtt

    from emo7ion.core.service.bulk_client import BulkClient

    client = BulkClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                        manual_ack=manual_ack)
    client.enable_logger(broker_errors.paho_logger())
    if username:
        client.username_pw_set(username, password or None)
    if address.tls:
        client.tls_set(ca_certs=ca_file or None, cert_reqs=ssl.CERT_REQUIRED)
    low, high = reconnect_s
    client.reconnect_delay_set(min_delay=max(1, int(low)), max_delay=max(1, int(high)))
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    return client


@dataclass
class BrokerSettings:
    """How a service reaches the broker: a ``[broker]`` table in either service's config. Services embed it (and
    may extend it with their own keys); the error messages name keys under ``prefix`` (``broker.url``)."""

    url: str = field(default="mqtt://127.0.0.1:1883", metadata={"help": "mqtt://host:port or mqtts://host:port"})
    username: str = field(default="", metadata={"help": "MQTT user name (emo7ion broker add-camera / add-aggregator)"})
    password: str = field(default="", metadata={"help": "MQTT password"})
    ca_file: str = field(default="", metadata={"help": "CA certificate for mqtts:// (empty: system CAs)"})
    keepalive_s: int = field(default=30, metadata={"help": "MQTT keep-alive"})
    reconnect_min_s: float = field(default=1.0, metadata={"help": "first reconnect delay"})
    reconnect_max_s: float = field(default=60.0, metadata={"help": "longest reconnect delay"})

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress.parse(self.url)

    host = property(lambda self: self.address.host, doc="the URL's host")
    port = property(lambda self: self.address.port, doc="the URL's port, or the scheme's default")
    tls = property(lambda self: self.address.tls, doc="mqtts://")

    def validate(self, prefix: str = "broker.") -> None:
        """A ConfigError naming the first bad key (``prefix`` + its name)."""
        BrokerAddress.parse(self.url, f"{prefix}url")
        if self.ca_file and not Path(self.ca_file).is_file():
            raise ConfigError(f"{prefix}ca_file {self.ca_file!r} does not exist")
        for key in ("keepalive_s", "reconnect_min_s"):
            check_positive(prefix + key, getattr(self, key))
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ConfigError(f"{prefix}reconnect_max_s must be >= {prefix}reconnect_min_s")

    def client(self, client_id: str, will: Will | None = None, manual_ack: bool = False) -> mqtt.Client:
        """:func:`make_client` with these settings."""
        return make_client(client_id, self.address, username=self.username, password=self.password,
                           ca_file=self.ca_file, reconnect_s=(self.reconnect_min_s, self.reconnect_max_s), will=will,
                           manual_ack=manual_ack)
