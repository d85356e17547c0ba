"""paho's client with its socket work done in bulk, for the aggregator's thousands of messages a second.

paho reads a packet in three or more ``recv`` calls (its type byte, each byte of its length, then the rest), and
wakes its network thread with a byte on a socket pair for every packet another thread queues (a PUBACK, an ack).
Each of those system calls lets go of the GIL, and at 5,000 windows a second that is some 30,000 of them, each a
chance for the ingest's two threads to wait on each other (issue 18 part 4: the profile put two thirds of the
network thread in ``_sock_recv`` and a quarter of the writer in queueing its PUBACKs and acks).

:class:`BulkClient` changes only how bytes move, never what is sent or when a packet counts as handled:

- reads take what the socket holds (up to :data:`READ_CHUNK`) and serve paho's small reads from it; as
  ``select`` cannot see bytes already read, :meth:`loop_read` goes on while any are left;
- the doorbell rings only when the out-queue was empty: paho's loop, once woken, writes until that queue is
  empty (or the socket is full, when it waits for the socket to take more), so later packets ride on the same ring;
- writes join the queue's leading packets (up to :data:`WRITE_CHUNK` bytes) into one ``send``: paho then handles
  them as one packet, and whatever it does once a packet is written (a QoS 0 publish is settled) is done for each.
  A DISCONNECT is never joined, nor a QoS 0 publish when an ``on_publish`` callback would want its own mid.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt

READ_CHUNK = 65536
WRITE_CHUNK = 65536
_PUBLISH, _PUBACK, _DISCONNECT = 0x30, 0x40, 0xE0  # MQTT packet types (a fixed header's high four bits)


class _Settles:
    """The ``info`` of a joined packet: settles each QoS 0 publish it carries, as paho would have one by one."""

    def __init__(self, infos: list):
        self.infos = infos

    @property
    def rc(self):
        return self.infos[0].rc

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

    # -- reading

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._read_pos >= len(self._read_buffer):
            data = super()._sock_recv(READ_CHUNK)  # raises BlockingIOError when nothing is there, as paho expects
            if len(data) <= bufsize:
                return data  # b"" (closed) included
            self._read_buffer, self._read_pos = data, 0
        start = self._read_pos
        self._read_pos = min(start + bufsize, len(self._read_buffer))
        return self._read_buffer[start:self._read_pos]

    def _buffered(self) -> int:
        return len(self._read_buffer) - self._read_pos

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None and self._buffered():
            rc = super().loop_read(max_packets)  # each pass reads at least one buffered byte, or empties the buffer
        return rc

    def _sock_close(self) -> None:
        self._read_buffer, self._read_pos = b"", 0  # a new connection starts with nothing of the old one's bytes
        super()._sock_close()

    # -- writing

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
