"""The device's MQTT side: status with a last will, windows from the outbox in order, health records.

paho-mqtt 2.x, MQTT 5, QoS 1, through the agent's one broker link (core/service/broker_link.py: the client, the
will, status, reconnects with paho's backoff, the refusal signal): the agent starts and classifies without a
broker, and the sender thread drains the outbox whenever a connection exists.

A window leaves the outbox when an aggregator acknowledges it on the camera's ack topic (or on its PUBACK, as the
outbox's delivery mode says: edge/outbox.py). What the broker took and nobody acknowledged is sent again: on its
backoff, and on every new connection; while no ack has come for ``resend_s``, only one window each ``resend_s``
(a probe), so an aggregator that is away does not find its queue doubled when it comes back.
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
from emo7ion.core.service.broker_link import BrokerLink
from emo7ion.core.service.version import version
from emo7ion.edge.config import BrokerConfig
from emo7ion.edge.outbox import Outbox

log = logging.getLogger(__name__)

AGENT = f"emo7ion-edge {version()}"


class Publisher:
    """Sends the outbox through the agent's broker link, from its own thread. ``stop_event`` is the process's one
    stop event (the agent's): the sender thread ends on it, and the link sets it when the broker refuses our
    credentials; then ``stop`` sends what is left, ``offline``, and disconnects."""

    def __init__(self, venue: str, camera: str, broker: BrokerConfig, outbox: Outbox, model: dict[str, str],
                 zone: str | None = None, stop_event: threading.Event | None = None):
        self.venue, self.camera, self.zone = venue, camera, zone or None
        self.broker = broker
        self.outbox = outbox
        self.model = model
        self._wake = threading.Event()
        self._stop = stop_event if stop_event is not None else threading.Event()  # standalone (tests): its own
        self._lock = threading.Lock()
        self._inflight: dict[int, int] = {}   # mid -> seq
        self._resends: set[int] = set()       # the mids in _inflight that re-send a window the broker took before
        self._heard_at = float("-inf")        # monotonic time of this connection's last ack: an aggregator answers
        self._probe_at = 0.0                  # while none answers, when the next single re-send may go
        self._early: dict[int, tuple[float, bool]] = {}  # acks that beat publish() back: mid -> (when, ok)
        self._last_sent = -1                  # highest seq handed to paho in this connection's lifetime
        self._refused_backoff = 0.0  # grows while the broker refuses windows (a wrong ACL), resets on success
        self._retry_at = 0.0
        # camera.VENUE.CAMERA: two venues' cameras of the same id never take each other's connection over.
        self.link = BrokerLink(broker, messages.camera_client_id(venue, camera), self._stop,
                               status_topic=messages.camera_topic(venue, camera, "status"), status=self._status,
                               max_inflight=broker.max_inflight)
        self.link.handle_publishes(self._on_publish)
        self.ack_topic = messages.ack_topic(venue, camera)
        self.link.subscribe(self.ack_topic)  # renewed by the link on every reconnect
        self.link.handle_messages(self._on_message)
        self.link.when_connected(self._on_connected)
        self._sender = threading.Thread(target=self._send_loop, name="outbox-sender", daemon=True)

    @property
    def client(self) -> mqtt.Client:
        return self.link.client

    @property
    def connected(self) -> threading.Event:
        return self.link.connected

    @property
    def refused(self) -> str | None:
        """The broker refused our credentials: retrying cannot help (the link has set the stop event)."""
        return self.link.refused

    def _status(self, state: str) -> bytes:
        return messages.status_payload(messages.Status(
            venue=self.venue, camera=self.camera, zone=self.zone, state=state, ts=dt.datetime.now(dt.UTC),
            agent=AGENT, model=self.model))

    # -- lifecycle

    def start(self) -> None:
        self.link.start()
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
        self.link.stop()

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

    def _on_connected(self, session_present: bool) -> None:
        with self._lock:
            # paho re-sends what it still holds; everything else is sent again from the outbox.
            self._last_sent = max((seq for mid, seq in self._inflight.items() if mid not in self._resends),
                                  default=-1)
            self._heard_at, self._probe_at = float("-inf"), 0.0  # whether an aggregator answers is not known yet
        self.outbox.resend_all()  # the broker may have lost what it took (a crash, an old store put back)
        self._wake.set()

    def _on_message(self, client, userdata, message) -> None:
        """An aggregator's ack: the windows it covers leave the outbox. Anything else is ignored with a line
        (the broker's ACL lets only aggregators write here: a bad one is a bug or a misconfiguration)."""
        try:
            if message.topic != self.ack_topic:
                raise messages.MessageError(f"not this camera's ack topic {self.ack_topic}", "topic")
            ack = messages.parse_ack(message.topic, bytes(message.payload))
        except messages.MessageError as error:
            log.warning("ignored an acknowledgement on %s: %s", message.topic, error)
            return
        removed = self.outbox.acknowledge(ack.ranges)
        self._heard_at = time.monotonic()
        log.debug("aggregator %s acknowledged %d window(s), %d still in the outbox", ack.aggregator, ack.count,
                  removed)
        self._wake.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            seq = self._inflight.pop(mid, None)
            resend = mid in self._resends
            self._resends.discard(mid)
            if seq is None:  # not ours (status, health) or the sender has not recorded it yet
                now = time.monotonic()
                self._early = {m: v for m, v in self._early.items() if now - v[0] < 30.0}
                self._early[mid] = (now, not reason_code.is_failure)
                return
        self._settle(seq, not reason_code.is_failure, str(reason_code), resend)

    def _settle(self, seq: int, ok: bool, reason: str = "", resend: bool = False) -> None:
        """The broker's PUBACK: the outbox keeps or releases the window (its delivery mode). A refused window
        is sent again after a growing pause: a new one from the outbox's order, a re-send on its backoff."""
        if not ok:
            with self._lock:
                if not resend:
                    self._last_sent = min(self._last_sent, seq - 1)
                self._refused_backoff = min(60.0, max(1.0, self._refused_backoff * 2))
                self._retry_at = time.monotonic() + self._refused_backoff
            log.error("broker refused window %d: %s (check the camera's ACL); retrying in %.0f s",
                      seq, reason, self._refused_backoff)
            return
        self._refused_backoff = 0.0
        self.outbox.broker_took(seq)
        self._wake.set()

    # -- sender thread

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            self._send_pending()

    def _send_pending(self) -> None:
        """Hand paho the windows due for a re-send, then the outbox's next windows, as many as ``max_inflight``
        leaves room for."""
        if not self.connected.is_set() or time.monotonic() < self._retry_at:
            return
        with self._lock:
            room = self.broker.max_inflight - len(self._inflight)
            after = self._last_sent
        if room <= 0:
            return
        due = self._take_due(room)
        batch = [(entry, True) for entry in due]
        if room > len(due):
            batch += [(entry, False) for entry in self.outbox.pending(after_seq=after, limit=room - len(due))]
        for entry, resend in batch:
            if not self.connected.is_set():
                break
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = int(self.outbox.max_age_s)
            # Never hold our lock across publish(): paho calls on_publish under its own lock.
            info = self.link.publish(entry.topic, entry.payload, qos=1, properties=props)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                log.debug("publish of window %d deferred: %s", entry.seq, mqtt.error_string(info.rc))
                break
            with self._lock:
                early = self._early.pop(info.mid, None)
                if early is None:
                    self._inflight[info.mid] = entry.seq
                    if resend:
                        self._resends.add(info.mid)
                if not resend:
                    self._last_sent = entry.seq
            if early is not None:
                self._settle(entry.seq, early[1], resend=resend)

    def _take_due(self, room: int) -> list:
        """The sent windows to send again now: as many as are due and fit while an aggregator answers (an ack
        within ``resend_s``); else one each ``resend_s``, whose ack shows that one is there."""
        now = time.monotonic()
        if now - self._heard_at < self.outbox.resend_s:
            return self.outbox.take_due(limit=room)
        if now < self._probe_at:
            return []
        due = self.outbox.take_due(limit=1)
        if due:
            self._probe_at = now + self.outbox.resend_s
            log.debug("re-sending window %d as a probe: no aggregator ack for %.0f s", due[0].seq,
                      self.outbox.resend_s)
        return due

    def publish_health(self, health: messages.Health) -> None:
        if self.connected.is_set():
            self.link.publish(messages.camera_topic(self.venue, self.camera, "health"),
                              messages.health_payload(health), qos=0)
