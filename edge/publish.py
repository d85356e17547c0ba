"""The device's MQTT side: status with a last will, windows from the outbox in order, health records.

paho-mqtt 2.x, MQTT 5, QoS 1, one network thread (``loop_start``) with paho's own reconnect backoff
(``connect_async`` + ``reconnect_delay_set``): the agent starts and classifies without a broker, and
the sender thread drains the outbox whenever a connection exists. A window leaves the outbox only
when its PUBACK arrives.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from emo7ion.core import messages
from emo7ion.core.service import broker_connection, broker_errors
from emo7ion.core.service.version import version
from emo7ion.edge.config import BrokerConfig
from emo7ion.edge.outbox import Outbox

log = logging.getLogger(__name__)

AGENT = f"emo7ion-edge {version()}"


def make_client(client_id: str, broker: BrokerConfig, will: broker_connection.Will | None = None) -> mqtt.Client:
    """The agent's client: the shared recipe, and at most ``max_inflight`` windows unacknowledged."""
    client = broker.client(client_id, will)
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(broker.max_inflight)
    return client


class Publisher:
    """Owns the MQTT client and the thread that sends the outbox. ``stop_event`` is the process's one stop event
    (the agent's): the sender thread ends on it, then ``stop`` sends what is left, ``offline``, and disconnects."""

    def __init__(self, venue: str, camera: str, broker: BrokerConfig, outbox: Outbox, model: dict[str, str],
                 zone: str | None = None, stop_event: threading.Event | None = None):
        self.venue, self.camera, self.zone = venue, camera, zone or None
        self.broker = broker
        self.outbox = outbox
        self.model = model
        self.connected = threading.Event()
        self._wake = threading.Event()
        self._stop = stop_event if stop_event is not None else threading.Event()  # standalone (tests): its own
        self._lock = threading.Lock()
        self._inflight: dict[int, int] = {}   # mid -> seq
        self._early: dict[int, tuple[float, bool]] = {}  # acks that beat publish() back: mid -> (when, ok)
        self._last_sent = -1                  # highest seq handed to paho in this connection's lifetime
        self._refused_backoff = 0.0  # grows while the broker refuses windows (a wrong ACL), resets on success
        self._retry_at = 0.0
        self.refused: str | None = None  # the broker refused our credentials: retrying cannot help
        self._last_failure = ""
        # camera.VENUE.CAMERA: two venues' cameras of the same id never take each other's connection over.
        self.client = make_client(messages.camera_client_id(venue, camera), broker, broker_connection.Will(
            messages.camera_topic(venue, camera, "status"), self._status("offline")))
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._sender = threading.Thread(target=self._send_loop, name="outbox-sender", daemon=True)

    def _status(self, state: str) -> bytes:
        return messages.status_payload(messages.Status(
            venue=self.venue, camera=self.camera, zone=self.zone, state=state, ts=dt.datetime.now(dt.UTC),
            agent=AGENT, model=self.model))

    # -- lifecycle

    def start(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s,
                                  clean_start=True)
        self.client.loop_start()
        self._sender.start()

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Send what the outbox holds (up to ``flush_timeout``), publish ``offline``, disconnect."""
        self._stop.set()  # (the agent set it already) the sender thread ends within a tick
        self._wake.set()
        self._sender.join(timeout=5)
        if self._sender.is_alive():  # stuck in a send: two threads must not send; the outbox keeps the rest
            log.warning("the sender did not end; %d window(s) stay in the outbox", self.outbox.depth())
        elif self.refused is None:
            self.flush(flush_timeout)
        if self.connected.is_set():
            info = self.client.publish(messages.camera_topic(self.venue, self.camera, "status"),
                                       self._status("offline"), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def flush(self, timeout: float) -> bool:
        """Send what the outbox holds from this thread, in the ended sender's place, until it is empty (True) or
        ``timeout`` passes; acknowledgements wake it early."""
        deadline = time.monotonic() + timeout
        while self.outbox.depth() and time.monotonic() < deadline:
            self._send_pending()
            self._wake.wait(0.05)
            self._wake.clear()
        return self.outbox.depth() == 0

    def wake(self) -> None:
        """A new window is in the outbox."""
        self._wake.set()

    # -- paho callbacks (network thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            text = broker_errors.describe_refusal(self.broker.host, self.broker.port, reason_code,
                                                  self.broker.username)
            if broker_errors.is_permanent(reason_code):
                self.refused = text  # the agent stops: a retry would be refused again
            else:
                log.error("%s; retrying with backoff", text)
            self._last_failure = text
            return
        self._last_failure = ""
        log.info("connected to %s:%d as %s", self.broker.host, self.broker.port,
                 messages.camera_client_id(self.venue, self.camera))
        client.publish(messages.camera_topic(self.venue, self.camera, "status"), self._status("online"),
                       qos=1, retain=True)
        with self._lock:
            # paho re-sends what it still holds; everything else is sent again from the outbox.
            self._last_sent = max(self._inflight.values(), default=-1)
        self.connected.set()
        self._wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        """The connection could not be made (paho retries with backoff): its cause, once per new cause."""
        text = broker_errors.describe_failure(self.broker.host, self.broker.port, self.broker.tls)
        if text != self._last_failure:
            log.error("%s; retrying with backoff", text)
        else:
            log.debug("%s; retrying with backoff", text)
        self._last_failure = text

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if not self._stop.is_set() and not self._last_failure:  # a refused CONNACK was logged already
            log.warning("broker connection lost (%s); paho reconnects with backoff", reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            seq = self._inflight.pop(mid, None)
            if seq is None:  # not ours (status, health) or the sender has not recorded it yet
                now = time.monotonic()
                self._early = {m: v for m, v in self._early.items() if now - v[0] < 30.0}
                self._early[mid] = (now, not reason_code.is_failure)
                return
        self._settle(seq, not reason_code.is_failure, str(reason_code))

    def _settle(self, seq: int, ok: bool, reason: str = "") -> None:
        if not ok:
            with self._lock:
                self._last_sent = min(self._last_sent, seq - 1)
                self._refused_backoff = min(60.0, max(1.0, self._refused_backoff * 2))
                self._retry_at = time.monotonic() + self._refused_backoff
            log.error("broker refused window %d: %s (check the camera's ACL); retrying in %.0f s",
                      seq, reason, self._refused_backoff)
            return
        self._refused_backoff = 0.0
        self.outbox.ack(seq)
        self._wake.set()

    # -- sender thread

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            self._send_pending()

    def _send_pending(self) -> None:
        """Hand paho the outbox's next windows, as many as ``max_inflight`` leaves room for."""
        if not self.connected.is_set() or time.monotonic() < self._retry_at:
            return
        with self._lock:
            room = self.broker.max_inflight - len(self._inflight)
            after = self._last_sent
        if room <= 0:
            return
        for entry in self.outbox.pending(after_seq=after, limit=room):
            if not self.connected.is_set():
                break
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = int(self.outbox.max_age_s)
            # Never hold our lock across publish(): paho calls on_publish under its own lock.
            info = self.client.publish(entry.topic, entry.payload, qos=1, properties=props)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                log.debug("publish of window %d deferred: %s", entry.seq, mqtt.error_string(info.rc))
                break
            with self._lock:
                early = self._early.pop(info.mid, None)
                if early is None:
                    self._inflight[info.mid] = entry.seq
                self._last_sent = entry.seq
            if early is not None:
                self._settle(entry.seq, early[1])

    def publish_health(self, health: messages.Health) -> None:
        if self.connected.is_set():
            self.client.publish(messages.camera_topic(self.venue, self.camera, "health"),
                                messages.health_payload(health), qos=0)
