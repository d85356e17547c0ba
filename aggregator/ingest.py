"""Ingestion: MQTT 5 subscription with a persistent session (the service's broker link) -> validation -> batched
store writes.

QoS 1 messages are acknowledged by hand, and only after the transaction that stored them has
committed: a ``kill -9`` between receiving and storing leaves the message unacknowledged, and the
broker's persistent session delivers it again. Then each camera is told, on its ack topic, which of its
windows that batch finished (stored, a duplicate, or refused for good), so that it may delete them from its
outbox: one publish per camera per batch (``core/messages.py``'s ack contract). A bounded hand-off between the
network thread and the writer (``handoff.py``, a batch at a time) gives back-pressure (the broker queues) instead of
unbounded memory. Every rejected message is counted by reason and logged with its topic; none stops ingestion.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from emo7ion.aggregator import plausibility
from emo7ion.aggregator.changes import Changes
from emo7ion.aggregator.config import AggregatorConfig
from emo7ion.aggregator.handoff import Handoff
from emo7ion.aggregator.quota import WindowQuota
from emo7ion.aggregator.ratelimit import RateLimitedLog
from emo7ion.aggregator.store import Store
from emo7ion.aggregator.zones import Zones
from emo7ion.core import messages
from emo7ion.core.service.broker_link import BrokerLink

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    received: int = 0    # camera topics (aggregators' own output seen through the wildcard is not counted)
    own_output: int = 0  # mood and ack messages of aggregators delivered to us, skipped (a shared subscription)
    stored: int = 0
    duplicates: int = 0
    statuses: int = 0
    health: int = 0
    rejected: Counter = field(default_factory=Counter)
    batches: int = 0
    store_errors: int = 0
    latency_sum_s: float = 0.0   # end of window -> stored, summed over stored windows
    connected: bool = False   # the broker link's state, for the API and /metrics
    connections: int = 0   # successful connects
    disconnects: int = 0   # connections lost (not our own stop)
    acks_sent: int = 0   # ack payloads published to cameras (one per camera per batch, more past 100 ranges)
    windows_acked: int = 0  # windows those acks covered (a re-sent window is acknowledged again)
    store_ok: bool = True  # the last write committed (False from a failed write until one succeeds)
    log_suppressed: int = 0  # rejection log lines left out by the rate limit
    seq_resets: Counter = field(default_factory=Counter)  # (venue, camera) -> sequence restarts (never missing)
    windows_today: dict = field(default_factory=dict)  # (venue, camera) -> windows stored today (the day cap's count)
    day_cap: int = 0  # max_camera_windows_per_day (0: not applied)


@dataclass(frozen=True)
class Refused:
    """A window judged unbelievable: not stored, but its seq is accounted for (it arrived)."""

    window: messages.Window
    reason: str

    @property
    def venue(self) -> str:
        return self.window.venue

    @property
    def camera(self) -> str:
        return self.window.camera


_END = object()
"""Queued by ``stop`` once the network thread has ended: nothing more will arrive, the writer may end."""


class Ingest:
    """Receives on the service's broker link (``link``: made with ``manual_ack``, a persistent session) and owns the
    writer thread; ``start``/``stop`` are idempotent and quick. ``stop_event`` is the process's one stop event: it
    cuts the writer's retries short. Messages are stored until the link is stopped (in a process with agents in
    it, the demo, those flush into us after the event); then ``stop`` lets the writer store what the queue holds
    and end."""

    def __init__(self, config: AggregatorConfig, store: Store, changes: Changes, stop_event: threading.Event,
                 link: BrokerLink):
        self.config = config
        self.store = store
        self.changes = changes
        self.link = link
        self.stats = IngestStats(day_cap=config.max_camera_windows_per_day if config.check_windows else 0)
        self.zones = Zones(config.venues, judging=config.check_windows)
        self.quota = (WindowQuota(config.camera_backlog_s, config.max_camera_windows_per_day)
                      if config.check_windows else None)
        self.rejections = RateLimitedLog(log)
        self._handoff = Handoff(config.queue_size)
        self._stop = stop_event
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        link.handle_messages(self._on_message)
        link.when_connected(self._on_connected)
        link.when_disconnected(self._on_disconnected)
        # Our own acks and moods are not ours to read: a plain subscription asks the broker to leave them out
        # (MQTT 5 no local; a shared one may not, so they arrive and are skipped).
        link.subscribe(config.subscription, qos=1, no_local=not config.shared_group)

    def start(self) -> None:
        """The writer; the link is started by the service once every part has registered with it."""
        self._writer.start()

    def stop(self) -> None:
        """After the link has stopped (nothing more arrives): the writer stores what the queue holds, then ends."""
        self._stop.set()  # (set already by the service)
        if self._writer.is_alive():
            try:
                self._handoff.put(_END, timeout=10)  # behind everything received: the writer stores it all, then ends
            except queue.Full:
                log.warning("the writer is stuck; %d message(s) stay unacknowledged for the broker to deliver again",
                            len(self._handoff))
        self._writer.join(timeout=10)

    # -- network thread

    def _on_connected(self, session_present: bool) -> None:
        self.stats.connected, self.stats.connections = True, self.link.connections

    def _on_disconnected(self) -> None:
        self.stats.connected, self.stats.disconnects = False, self.link.disconnects

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        try:
            self._receive(client, message)
        except Exception:  # noqa: BLE001  a bug here must cost one message, never the network thread
            self.stats.rejected["internal"] += 1
            log.exception("unexpected error handling a message on %r; rejected", message.topic[:200])
            client.ack(message.mid, message.qos)

    def _receive(self, client, message: mqtt.MQTTMessage) -> None:
        if messages.is_mood_topic(message.topic) or messages.is_ack_topic(message.topic):  # aggregators' output
            self.stats.own_output += 1
            client.ack(message.mid, message.qos)
            return
        self.stats.received += 1
        try:
            parsed = messages.parse(message.topic, message.payload)
        except messages.MessageError as error:
            self._reject(error.reason, "rejected message on %r (%s): %s", message.topic[:200], error.reason, error)
            client.ack(message.mid, message.qos)
            return
        if message.retain and not isinstance(parsed, messages.Status):
            # A retained window or health record is a replay (each was delivered live once): only the last
            # status is worth keeping on the broker.
            self._reject("retained", "ignored a retained %s on %r", type(parsed).__name__.lower(), message.topic[:200])
            client.ack(message.mid, message.qos)
            return
        reason = plausibility.judge(parsed, time.time(), self.config)
        if reason is not None:
            self._reject(reason, "rejected %s from %s/%s (%s): %s", type(parsed).__name__.lower(), parsed.venue,
                         parsed.camera, reason, plausibility.explain(reason, parsed, self.config))
            if not isinstance(parsed, messages.Window):
                client.ack(message.mid, message.qos)
                return
            parsed = Refused(parsed, reason)  # through the writer, which accounts for its seq and acknowledges
        # Blocks when the writer is behind: paho stops reading and the broker holds the rest. (The writer lives
        # until the network thread has ended, so this always makes progress.)
        self._handoff.put((parsed, message.mid, message.qos))

    def _reject(self, reason: str, message: str, *args: object) -> None:
        self.stats.rejected[reason] += 1
        if not self.rejections.warning(reason, message, *args):
            self.stats.log_suppressed = self.rejections.suppressed

    # -- writer thread

    def _write_loop(self) -> None:
        while True:
            batch = self._handoff.take(self.config.batch_size, first_wait_s=0.5, fill_wait_s=self.config.batch_wait_s)
            end = bool(batch) and batch[-1] is _END
            if end:
                batch.pop()
            if batch:
                self._write(batch)
            if end:
                return

    def _store(self, batch: list) -> int:
        """One transaction for the batch's windows, then its statuses and health; windows newly stored."""
        result = self.store.add_windows([item for item, _, _ in batch if isinstance(item, messages.Window)],
                                        refuse_overlaps=self.config.check_windows,
                                        refused=[item.window for item, _, _ in batch if isinstance(item, Refused)],
                                        zones=self.zones, quota=self.quota)
        for window, reason in [(window, "overlap") for window in result.overlapping] + result.refused:
            self._reject(reason, "rejected window %d from %s/%s (%s): %s", window.seq, window.venue,
                         window.camera, reason, plausibility.explain(reason, window, self.config))
        self.stats.seq_resets.update(result.resets)
        if self.quota is not None:
            self.stats.windows_today = self.quota.today(time.time())
        for item, _, _ in batch:
            if isinstance(item, messages.Status):
                self.store.set_status(item, self.zones)
                self.stats.statuses += 1
            elif isinstance(item, messages.Health):
                self.store.set_health(item)
                self.stats.health += 1
        return result.stored, result.duplicates

    def _write(self, batch: list) -> None:
        windows = [item for item, _, _ in batch if isinstance(item, messages.Window)]
        delay = 0.5
        while True:
            try:
                stored, duplicates = self._store(batch)
                break
            except Exception as error:  # noqa: BLE001  any database error: decide between retry and isolate
                self.stats.store_errors += 1
                self.stats.store_ok = False
                if self._stop.is_set():  # the store may be closing: never reject (and acknowledge) for that
                    log.warning("storing %d message(s) failed while stopping (%s); left unacknowledged for the "
                                "broker to deliver again", len(batch), error)
                    return
                if not self.store.is_transient(error):
                    # The database refused the data itself: store the messages one by one and reject (and
                    # acknowledge) only those that fail, instead of blocking the stream behind a poison message.
                    try:
                        stored, duplicates = self._isolate(batch)
                        break
                    except Exception as again:  # noqa: BLE001  the database went away meanwhile: retry it all
                        error = again
                log.error("storing %d message(s) failed (%s); retrying in %.1f s", len(batch), error, delay)
                if self._stop.wait(delay):
                    return  # shutting down: left unacknowledged, so the broker delivers them again
                delay = min(delay * 2, 30.0)
        now = time.time()
        self.stats.store_ok = True
        self.stats.stored += stored
        self.stats.duplicates += duplicates
        self.stats.latency_sum_s += sum(now - w.end.timestamp() for w in windows) if stored == len(windows) else 0.0
        self.stats.batches += 1
        for _, mid, qos in batch:
            self.link.ack(mid, qos)
        if self.config.ack:
            self._acknowledge(batch)
        self.changes.bump({item.venue for item, _, _ in batch})

    def _acknowledge(self, batch: list) -> None:
        """Tell each camera of the batch which of its windows are finished with: every window of a batch that
        committed is (stored, a duplicate, or refused: resending a refused window would only be refused again)."""
        seqs: dict[tuple[str, str], list[int]] = {}
        for item, _, _ in batch:
            window = item.window if isinstance(item, Refused) else item
            if isinstance(window, messages.Window):
                seqs.setdefault((window.venue, window.camera), []).append(window.seq)
        acks: list[tuple[str, bytes]] = []
        for (venue, camera), numbers in seqs.items():
            topic = messages.ack_topic(venue, camera)
            acks += [(topic, ack) for ack in messages.ack_payloads(venue, camera, self.config.identity, numbers)]
            self.stats.windows_acked += len(set(numbers))
        self.link.publish_many(acks)  # QoS 0, see messages.py: a lost ack costs one re-send
        self.stats.acks_sent += len(acks)

    def _isolate(self, batch: list) -> tuple[int, int]:
        stored = duplicates = 0
        for entry in batch:
            try:
                one, again = self._store([entry])
                stored, duplicates = stored + one, duplicates + again
            except Exception as error:  # noqa: BLE001  this one message cannot be stored: reject it, go on
                if self.store.is_transient(error) or self._stop.is_set():
                    raise
                self.stats.rejected["store"] += 1
                log.error("could not store a message from %s/%s (%s); rejected", entry[0].venue, entry[0].camera,
                          error)
        return stored, duplicates
