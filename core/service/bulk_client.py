"""paho's client with its socket work done in bulk, for the aggregator's thousands of messages a second.

paho reads a packet in three or more ``recv`` calls (its type byte, each byte of its length, then the rest), and
wakes its network thread with a byte on a socket pair for every packet another thread queues (a PUBACK, an ack).
Each of those system calls lets go of the GIL, and at 5,000 windows a second that is some 30,000 of them, each a
chance for the ingest's two threads to wait on each other (issue 18 part 4: the profile put two thirds of the
network thread in ``_sock_recv`` and a quarter of the writer in queueing its PUBACKs and acks).

:class:`BulkClient` changes only how bytes move, never what is sent or when a packet counts as handled:

- reads take what the socket holds (up to :data:`READ_CHUNK`, more for a longer packet) and whole packets are
  framed from that buffer (paho's ``_packet_read`` recomputed, without its call per byte of length); as ``select``
  cannot see bytes already read, :meth:`loop_read` goes on while a whole packet is buffered;
- a QoS 0 or 1 MQTT 5 PUBLISH without properties (every camera's) is decoded here into a :class:`_Received`,
  paho's ``MQTTMessage`` but for its empty ``Properties`` and its ``MQTTMessageInfo`` (a lock each), made only if
  read: 27-37 -> 9-12 us of the network thread a message; any other packet goes through paho's own handling;
- the doorbell rings only when the out-queue was empty: paho's loop, once woken, writes until that queue is
  empty (or the socket is full, when it waits for the socket to take more), so later packets ride on the same ring;
- writes join the queue's leading packets (up to :data:`WRITE_CHUNK` bytes) into one ``send``: paho then handles
  them as one packet, and whatever it does once a packet is written (a QoS 0 publish is settled) is done for each.
  A DISCONNECT is never joined, nor a QoS 0 publish when an ``on_publish`` callback would want its own mid;
- :meth:`BulkClient.publish_batch` queues many QoS 0 publishes (the ingest's acks of a batch) as one packet.
"""

from __future__ import annotations

import logging

import paho.mqtt.client as mqtt
from paho.mqtt.client import MalformedPacket  # what paho's own read catches (a name it imports)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

READ_CHUNK = 65536
WRITE_CHUNK = 65536
_PUBLISH, _PUBACK, _DISCONNECT = 0x30, 0x40, 0xE0  # MQTT packet types (a fixed header's high four bits)
_TOO_LONG = object()  # a remaining length of more than four bytes: a protocol error


def _idle_in_packet() -> dict:
    """paho's ``_in_packet`` between packets (it resets it to this after each one)."""
    return {"command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1, "remaining_length": 0,
            "packet": bytearray(b""), "to_process": 0, "pos": 0}


def _made_when_read(slot, make) -> property:
    """One of ``MQTTMessage``'s slots, filled by ``make(message)`` the first time it is read (unless set before)."""
    def read(message):
        try:
            return slot.__get__(message)
        except AttributeError:
            slot.__set__(message, make(message))
            return slot.__get__(message)
    return property(read, slot.__set__)


class _Received(mqtt.MQTTMessage):
    """A received message as paho makes it, but for its empty ``properties`` and its ``info``, made only if read."""

    __slots__ = ()
    properties = _made_when_read(mqtt.MQTTMessage.properties, lambda message: Properties(PacketTypes.PUBLISH))
    info = _made_when_read(mqtt.MQTTMessage.info, lambda message: mqtt.MQTTMessageInfo(message.mid))

    def __init__(self, mid: int, topic: bytes, payload: bytes, qos: int, retain: bool, dup: bool):
        self.timestamp = mqtt.time_func()
        self.state = mqtt.mqtt_ms_invalid
        self.mid, self._topic, self.payload, self.qos, self.retain, self.dup = mid, topic, payload, qos, retain, dup


class _Settles:
    """The ``info`` of a joined packet: settles each QoS 0 publish it carries, as paho would have one by one."""

    def __init__(self, infos: list):
        self.infos = infos

    @property
    def rc(self):
        return self.infos[0].rc if self.infos else mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    @rc.setter
    def rc(self, value) -> None:  # paho marks a packet lost to a dropped connection this way
        for info in self.infos:
            info.rc = value

    def _set_as_published(self) -> None:
        for info in self.infos:
            info._set_as_published()


class _Doorbell:
    """Stands in for paho's write end of its wake-up socket pair: rings the loop only for the packet that made the
    out-queue non-empty (paho appends a packet, then rings)."""

    def __init__(self, socket, client: mqtt.Client):
        self._socket = socket
        self._client = client

    def send(self, data: bytes) -> int:
        if len(self._client._out_packet) > 1:  # an earlier packet rang; the loop has not emptied the queue since
            return len(data)
        return self._socket.send(data)

    def __getattr__(self, name: str):
        return getattr(self._socket, name)


class BulkClient(mqtt.Client):
    """A paho ``Client`` (same constructor and API) that reads in chunks and rings its loop once per burst."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_pos = 0
        self._wanted = 0  # bytes the packet at the read position needs (when more than READ_CHUNK)

    # -- reading

    def _packet_read(self) -> mqtt.MQTTErrorCode:
        """One whole packet framed from the read buffer, then handled as paho handles it; the socket is read only
        when the buffer holds less than a packet."""
        while (bounds := self._next_packet()) is None:
            rc = self._fill()
            if rc is not None:
                return rc
        if bounds is _TOO_LONG:
            return mqtt.MQTTErrorCode.MQTT_ERR_PROTOCOL  # paho: more than four bytes of remaining length
        start, end = bounds
        command, body = self._read_buffer[self._read_pos], self._read_buffer[start:end]
        self._read_pos = end
        self._in_packet = {"command": command, "have_remaining": 1, "remaining_count": [], "remaining_mult": 1,
                           "remaining_length": len(body), "packet": body, "to_process": 0, "pos": 0}
        try:
            rc = self._packet_handle()
        except MalformedPacket as error:
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", error)
            rc = mqtt.MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = _idle_in_packet()
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        return rc

    def _next_packet(self):
        """(start, end) of the body of the whole packet at the read position; None while it is not all here;
        ``_TOO_LONG`` for a remaining length of more than four bytes."""
        buffer, position = self._read_buffer, self._read_pos
        available = len(buffer)
        length, shift, index = 0, 0, position + 1
        while True:
            if index >= available:
                return None
            byte = buffer[index]
            index += 1
            if index - position > 5:
                return _TOO_LONG
            length += (byte & 127) << shift
            if byte < 128:
                break
            shift += 7
        if available - index < length:
            self._wanted = index + length - position
            return None
        return index, index + length

    def _fill(self) -> mqtt.MQTTErrorCode | None:
        """Append what the socket holds to the unread bytes; None, or the code to return (paho's, for each case)."""
        try:
            data = self._sock_recv(max(READ_CHUNK, self._wanted))
        except BlockingIOError:
            return mqtt.MQTTErrorCode.MQTT_ERR_AGAIN
        except TimeoutError as error:
            self._easy_log(mqtt.MQTT_LOG_ERR, "timeout on socket: %s", error)
            return mqtt.MQTTErrorCode.MQTT_ERR_CONN_LOST
        except OSError as error:
            self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", error)
            return mqtt.MQTTErrorCode.MQTT_ERR_CONN_LOST
        if not data:
            return mqtt.MQTTErrorCode.MQTT_ERR_CONN_LOST
        rest = self._read_buffer[self._read_pos:]
        self._read_buffer, self._read_pos, self._wanted = (rest + data if rest else data), 0, 0
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        return None

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None and self._next_packet() is not None:
            rc = super().loop_read(max_packets)  # packets already read: ``select`` cannot see them
        return rc

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        """A QoS 0 or 1 MQTT 5 PUBLISH without properties (what cameras send) is decoded here, and its message made
        without the objects nobody reads on it (an empty ``Properties``, an ``MQTTMessageInfo`` with its lock):
        :class:`_Received` makes them when asked. Anything else, or debug logging, goes through paho's own."""
        header, packet = self._in_packet["command"], self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        if self._protocol != mqtt.MQTTv5 or qos == 2 or self.on_log is not None or (
                self._logger is not None and self._logger.isEnabledFor(logging.DEBUG)):
            return super()._handle_publish()
        topic_end = 2 + int.from_bytes(packet[:2], "big")
        properties_at = topic_end + 2 if qos else topic_end
        if properties_at >= len(packet) or packet[properties_at] != 0:  # properties, or malformed: paho's way
            return super()._handle_publish()
        mid = int.from_bytes(packet[topic_end:properties_at], "big") if qos else 0
        message = _Received(mid, packet[2:topic_end], packet[properties_at + 1:], qos, bool(header & 0x01),
                            bool(header & 0x08))
        self._handle_on_message(message)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def _sock_close(self) -> None:
        self._read_buffer, self._read_pos, self._wanted = b"", 0, 0  # a new connection starts with none of the old
        super()._sock_close()

    # -- writing

    def publish_batch(self, messages: list[tuple[str, bytes]]) -> None:
        """QoS 0 publishes of ``messages`` (topic, payload), queued as one packet with one ring of the doorbell: the
        ingest's acks, one per camera per batch (paho's ``publish`` took ~8 us each, building an ``MQTTMessageInfo``
        with its lock that nobody waits on). The broker receives the same PUBLISH packets, in order. paho's own
        ``publish``, one by one, wherever its handling matters: not connected (it refuses a QoS 0 publish), MQTT
        3, or an ``on_publish`` callback that wants each mid."""
        if self._state != mqtt._ConnectionState.MQTT_CS_CONNECTED or self._sock is None \
                or self._protocol != mqtt.MQTTv5 or self.on_publish is not None:
            for topic, payload in messages:
                self.publish(topic, payload, qos=0)
            return
        parts: list[bytes] = []
        for topic, payload in messages:
            name = topic.encode()
            if not name or b"+" in name or b"#" in name or len(name) > 65535:
                raise ValueError(f"cannot publish to topic {topic!r}")  # as paho's publish refuses it
            header = self._pack_remaining_length(bytearray([_PUBLISH]), 3 + len(name) + len(payload))
            parts += (header, len(name).to_bytes(2, "big"), name, b"\x00", payload)  # no packet id, no properties
        if parts:
            self._packet_queue(_PUBLISH, b"".join(parts), 0, 0, _Settles([]))

    def _packet_write(self) -> mqtt.MQTTErrorCode:
        self._join_leading_packets()
        return super()._packet_write()

    @staticmethod
    def _is_qos0_publish(packet) -> bool:
        return packet["command"] & 0xF0 == _PUBLISH and packet["qos"] == 0

    def _joinable(self, packet) -> bool:
        if packet["command"] & 0xF0 == _DISCONNECT:
            return False
        return not (self._is_qos0_publish(packet) and self.on_publish is not None)

    def _join_leading_packets(self) -> None:
        """Only the network thread takes from the left of the queue; other threads append on the right."""
        out = self._out_packet
        if len(out) < 2 or not self._joinable(out[0]) or not self._joinable(out[1]):
            return
        parts, infos, size = [], [], 0
        while out and size < WRITE_CHUNK and self._joinable(out[0]):
            packet = out.popleft()
            part = packet["packet"][packet["pos"]:]
            parts.append(part)
            size += len(part)
            info = packet["info"]
            if self._is_qos0_publish(packet) and info is not None:
                infos.extend(info.infos if isinstance(info, _Settles) else [info])
        joined = b"".join(parts)
        out.appendleft({"command": _PUBLISH if infos else _PUBACK, "mid": 0, "qos": 0 if infos else 1, "pos": 0,
                        "to_process": len(joined), "packet": joined, "info": _Settles(infos) if infos else None})

    # -- waking the loop

    def loop_start(self) -> mqtt.MQTTErrorCode:
        rc = super().loop_start()
        if rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS and self._sockpairW is not None:
            self._sockpairW = _Doorbell(self._sockpairW, self)
        return rc
