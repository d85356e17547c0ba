"""A service's one connection to the broker: the paho client (made by broker_connection's recipe), its will and
online/offline status, the connection callbacks, the refusal signal, the subscriptions, and publishing.

The agent's publisher and the aggregator's ingest, mood publisher and discovery all go through one link, so a
connection is made, watched, renewed and closed in one place:

- A lost connection is re-made by paho (``connect_async`` + its backoff); every cause of a failed attempt is
  logged once, in one line from :mod:`broker_errors`, and again only when it changes.
- On every (re)connect the link publishes ``online`` on its status topic (retained; the will says ``offline``
  when we vanish, a clean stop says it itself), subscribes again to what it was asked to, then tells whoever
  asked (:meth:`BrokerLink.when_connected`) before ``connected`` is set, so they reset their state before
  anyone sends on the new connection.
- A CONNACK that retrying cannot change (bad password, not authorised) records the broker's answer in
  ``refused`` and sets the process's stop event: the service stops, and its command ends with that one line
  (:meth:`BrokerLink.raise_if_refused`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from emo7ion.core.service import broker_errors
from emo7ion.core.service.broker_connection import BrokerSettings, Will

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

Status = Callable[[str], bytes | str]
"""The status payload for a state (``online``, ``offline``): the aggregator's bare word, a camera's JSON."""


class BrokerLink:
    """One client, one network thread (``loop_start``). ``stop`` is the process's one stop event: the link sets it
    on a permanent refusal, and a disconnect while it is set is ours, not a lost connection.

    ``status_topic`` (optional) gets ``status("online")`` on every connect and ``status("offline")`` as the will
    and on a clean stop. ``session_expiry_s`` asks for a persistent session (``clean_start=False``); without it
    each connection starts clean. ``manual_ack``: received QoS 1 messages are acknowledged by :meth:`ack` only.
    ``max_inflight``: QoS 1 publishes unacknowledged at once (paho's default 20 when None; keep it within the
    broker's Receive Maximum, Mosquitto's ``max_inflight_messages``: paho cannot adapt it to the CONNACK)."""

    def __init__(self, settings: BrokerSettings, client_id: str, stop: threading.Event, *,
                 status_topic: str | None = None, status: Status = str, session_expiry_s: int | None = None,
                 manual_ack: bool = False, max_inflight: int | None = None):
        self.settings, self.client_id, self.status_topic = settings, client_id, status_topic
        self._status = status
        self._stop = stop
        self._session_expiry_s = session_expiry_s
        self._closing = False  # our own stop: its disconnect is not a lost connection
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker granted this connection's subscriptions (SUBACK)
        self.connections = 0   # successful connects
        self.disconnects = 0   # connections lost (not our own stop, not a refused CONNACK)
        self.refused: str | None = None  # the broker's permanent refusal, in one line
        self._last_failure = ""
        self._subscriptions: dict[str, tuple[int, bool]] = {}  # topic -> (qos, no_local)
        self._on_connected: list[Callable[[bool], None]] = []
        self._on_disconnected: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        will = Will(status_topic, status("offline")) if status_topic else None
        self.client = settings.client(client_id, will, manual_ack=manual_ack)
        if max_inflight is not None:
            self.client.max_inflight_messages_set(max_inflight)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe

    # -- what others hand the link

    def subscribe(self, topic: str, qos: int = 1, no_local: bool = False) -> None:
        """Subscribe now if connected, and again on every reconnect. ``no_local``: the broker does not send us
        what we publish ourselves (MQTT 5; not allowed on a shared subscription)."""
        with self._lock:
            self._subscriptions[topic] = (qos, no_local)
        if self.connected.is_set():
            self.client.subscribe([self._filter(topic, qos, no_local)])

    @staticmethod
    def _filter(topic: str, qos: int, no_local: bool):
        from paho.mqtt.subscribeoptions import SubscribeOptions

        return topic, SubscribeOptions(qos=qos, noLocal=no_local)

    def handle_messages(self, handler: Callable[[mqtt.Client, object, mqtt.MQTTMessage], None]) -> None:
        """paho's ``on_message(client, userdata, message)``, on the network thread."""
        self.client.on_message = handler

    def handle_publishes(self, handler: Callable) -> None:
        """paho's ``on_publish(client, userdata, mid, reason_code, properties)``: a QoS 1 publish acknowledged."""
        self.client.on_publish = handler

    def when_connected(self, callback: Callable[[bool], None]) -> None:
        """``callback(session_present)`` on the network thread after each connect (``connections`` counts it
        already), before ``connected`` is set."""
        self._on_connected.append(callback)

    def when_disconnected(self, callback: Callable[[], None]) -> None:
        """``callback()`` on the network thread whenever a connection ends (lost, refused or ours), after
        ``disconnects`` counted a lost one."""
        self._on_disconnected.append(callback)

    # -- publishing

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False,
                properties=None) -> mqtt.MQTTMessageInfo:
        """paho's publish: while the link is down paho queues QoS 1 messages and sends them on reconnect."""
        return self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        """QoS 0 publishes of (topic, payload), queued together (the ingest's acks of a batch): dropped while the
        link is down, as paho drops a QoS 0 publish then."""
        self.client.publish_batch(messages)

    def publish_retained(self, topic: str, payload: bytes | str) -> None:
        """Retained at QoS 1 (status, mood and discovery topics)."""
        self.client.publish(topic, payload, qos=1, retain=True)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a received message (``manual_ack``): after what it carried is safe."""
        self.client.ack(mid, qos)

    # -- lifecycle

    def start(self) -> None:
        """Connect in the background: the service runs without a broker and paho retries with backoff."""
        properties = None
        if self._session_expiry_s is not None:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = int(self._session_expiry_s)
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s,
                                  clean_start=self._session_expiry_s is None, properties=properties)
        self.client.loop_start()

    def stop(self, timeout: float = 2.0) -> None:
        """Say ``offline`` (a clean disconnect sends no will), disconnect and end the network thread."""
        self._closing = True
        if self.status_topic and self.connected.is_set():
            info = self.client.publish(self.status_topic, self._status("offline"), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):  # the connection went meanwhile: the will says it instead
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def raise_if_refused(self) -> None:
        """After the service stopped: the broker's permanent refusal as the command's one-line error."""
        if self.refused is not None:
            raise broker_errors.BrokerRefusedError(self.refused)

    # -- paho callbacks (network thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        settings = self.settings
        if reason_code.is_failure:
            text = broker_errors.describe_refusal(settings.host, settings.port, reason_code, settings.username)
            if broker_errors.is_permanent(reason_code):
                self.refused = text  # a retry would be refused again: the process stops, its command says why
                self._stop.set()
            else:
                self._log_failure(text)
            self._last_failure = text
            return
        self._last_failure = ""
        log.info("connected to %s:%d as %s (session present: %s)", settings.host, settings.port, self.client_id,
                 flags.session_present)
        if self.status_topic:
            client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
        with self._lock:
            subscriptions = [self._filter(topic, *options) for topic, options in self._subscriptions.items()]
        if subscriptions:
            log.info("subscribing to %s", ", ".join(topic for topic, _ in subscriptions))
            client.subscribe(subscriptions)
        self.connections += 1
        for callback in self._on_connected:
            callback(bool(flags.session_present))
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        """SUBACK: what is published from now on reaches us (a test or a bench waits for it before sending)."""
        refused = [code for code in reason_codes if code.is_failure]
        if refused:
            log.error("the broker refused a subscription: %s (check this account's ACL)", ", ".join(map(str, refused)))
        else:
            self.subscribed.set()

    def _on_connect_fail(self, client, userdata) -> None:
        """No connection (paho retries with backoff): the cause, read while paho handles it."""
        text = broker_errors.describe_failure(self.settings.host, self.settings.port, self.settings.tls)
        self._log_failure(text)
        self._last_failure = text

    def _log_failure(self, text: str) -> None:
        """Once per new cause at ERROR; the same cause again only at DEBUG."""
        log.log(logging.ERROR if text != self._last_failure else logging.DEBUG, "%s; retrying with backoff", text)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if not (self._closing or self._stop.is_set() or self._last_failure):  # a refusal was logged already
            self.disconnects += 1
            log.warning("broker connection lost (%s); reconnecting with backoff", reason_code)
        for callback in self._on_disconnected:
            callback()
