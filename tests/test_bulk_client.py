"""The broker link's paho client reads in chunks and rings its loop once per burst (core/service/bulk_client.py),
on a real Mosquitto: a stream of messages of every size, the last with nothing after it, all arrive whole and in
order; PUBACKs and publishes queued in a burst by another thread all leave, in order, on a few rings, joined into few
writes, each publish settled; a message that straddles a read ends up whole; and nothing of an old connection's
bytes reaches the new one."""

from __future__ import annotations

import queue
import threading
import time

import pytest
from mqtt_helpers import Recorder, start_plain_broker

from emo7ion.core.service import bulk_client
from emo7ion.core.service.broker_connection import BrokerSettings
from emo7ion.core.service.broker_link import BrokerLink
from helpers import wait_until


class _CountingSocket:
    """The doorbell's socket, counting the rings that reach it."""

    def __init__(self, socket):
        self.socket, self.rings = socket, 0

    def send(self, data: bytes) -> int:
        self.rings += 1
        return self.socket.send(data)

    def __getattr__(self, name: str):
        return getattr(self.socket, name)


@pytest.fixture
def broker(tmp_path):
    broker = start_plain_broker(tmp_path / "broker")
    yield broker
    broker.stop()


def _link(port: int, stop: threading.Event) -> BrokerLink:
    settings = BrokerSettings(url=f"mqtt://127.0.0.1:{port}", reconnect_min_s=1, reconnect_max_s=1)
    return BrokerLink(settings, "bulk-test", stop, session_expiry_s=300, manual_ack=True)


def test_a_stream_of_every_size_arrives_whole_in_order_and_a_burst_of_acks_and_replies_all_leave(broker, monkeypatch):
    monkeypatch.setattr(bulk_client, "READ_CHUNK", 1000)  # many packets straddle a read
    stop = threading.Event()
    link = _link(broker.port, stop)
    assert isinstance(link.client, bulk_client.BulkClient)
    received: queue.Queue = queue.Queue()
    link.handle_messages(lambda client, userdata, message: received.put((bytes(message.payload), message.mid)))
    link.subscribe("test/bulk/in", qos=1)
    watcher = Recorder(broker.port, "test/bulk/out", client_id="bulk-watcher")
    sender = Recorder(broker.port, "test/bulk/none", client_id="bulk-sender")
    sizes = [1, 2, 127, 128, 129, 999, 1000, 1001, 16383, 16384, 70_000] + [40 + n % 300 for n in range(2000)]
    payloads = [f"{n:05d}".encode() + bytes([65 + n % 26]) * size for n, size in enumerate(sizes)]
    try:
        link.start()
        assert wait_until(link.subscribed.is_set, 15, what="the link's subscription")
        bell = _CountingSocket(link.client._sockpairW._socket)
        link.client._sockpairW._socket = bell
        sends = []
        real_send = link.client._sock_send
        link.client._sock_send = lambda data: sends.append(len(data)) or real_send(data)
        for payload in payloads:
            sender.client.publish("test/bulk/in", payload, qos=1)
        got, queued, infos = [], 0, []
        while len(got) < len(payloads):
            try:  # the last has nothing after it: it must arrive without waiting for more traffic
                burst = [received.get(timeout=15)]
            except queue.Empty:
                break
            time.sleep(0.02)  # what the broker sends before our PUBACKs (its 20 in flight), taken as one burst
            while not received.empty():
                burst.append(received.get())
            for payload, mid in burst:  # as the ingest's writer does per batch: a PUBACK and a reply per message
                link.ack(mid, 1)
                infos.append(link.publish("test/bulk/out", payload[:5], qos=0))
                queued += 2
            got += burst
        assert [payload for payload, _ in got] == payloads
        assert watcher.wait_for(lambda r: len(r.messages) == len(payloads), 15)
        assert [body for _, body, _ in watcher.messages] == [payload[:5] for payload in payloads]
        assert bell.rings < queued / 5, (bell.rings, queued)  # paho alone: one ring per packet
        assert len(sends) < queued, (len(sends), queued)  # paho alone: one send per packet (how few: GIL timing)
        assert all(info.is_published() for info in infos), "each QoS 0 publish of a joined write is settled"
    finally:
        for client in (watcher, sender):
            client.close()
        link.stop()
    # Acknowledged: a new session under the same id gets nothing delivered again.
    again: list[bytes] = []
    link = _link(broker.port, threading.Event())
    link.handle_messages(lambda client, userdata, message: again.append(bytes(message.payload)))
    link.subscribe("test/bulk/in", qos=1)
    try:
        link.start()
        assert wait_until(link.subscribed.is_set, 15)
        assert not wait_until(lambda: again, 1.5, interval=0.1), f"{len(again)} delivered again: a PUBACK was lost"
    finally:
        link.stop()


def _packet(command: int, qos: int, data: bytes, info=None) -> dict:
    return {"command": command, "mid": 1, "qos": qos, "pos": 0, "to_process": len(data), "packet": data,
            "info": info}


def test_joined_writes_keep_the_bytes_in_order_settle_each_publish_and_never_take_a_disconnect():
    client = bulk_client.BulkClient(bulk_client.mqtt.CallbackAPIVersion.VERSION2, client_id="bulk-join")
    infos = [bulk_client.mqtt.MQTTMessageInfo(mid) for mid in (1, 2)]
    partly_sent = _packet(0x40, 1, b"PUBACK-1")
    partly_sent["pos"], partly_sent["to_process"] = 3, 5
    client._out_packet.extend([partly_sent, _packet(0x30, 0, b"<ack-1>", infos[0]), _packet(0x30, 1, b"<window>"),
                               _packet(0x30, 0, b"<ack-2>", infos[1]), _packet(0xE0, 0, b"BYE"),
                               _packet(0x40, 1, b"after")])
    client._join_leading_packets()
    joined, *rest = client._out_packet
    assert joined["packet"] == b"ACK-1<ack-1><window><ack-2>" and joined["to_process"] == len(joined["packet"])
    assert [packet["packet"] for packet in rest] == [b"BYE", b"after"], "a DISCONNECT ends the run; it is sent alone"
    assert not any(info.is_published() for info in infos)
    joined["info"]._set_as_published()  # what paho does once the joined packet is written
    assert all(info.is_published() for info in infos)
    client.on_publish = lambda *args: None  # a callback wants each publish's own mid: QoS 0 publishes stay apart
    client._out_packet.clear()
    client._out_packet.extend([_packet(0x40, 1, b"a"), _packet(0x40, 1, b"b"), _packet(0x30, 0, b"c", infos[0])])
    client._join_leading_packets()
    assert [packet["packet"] for packet in client._out_packet] == [b"ab", b"c"]


def test_a_new_connection_starts_with_none_of_the_old_ones_bytes():
    """Bytes read ahead on a connection that then dropped would be parsed as the next connection's packets."""
    client = bulk_client.BulkClient(bulk_client.mqtt.CallbackAPIVersion.VERSION2, client_id="bulk-close")
    client._read_buffer, client._read_pos = b"\x30\x05stale", 0
    client._sock_close()
    assert client._read_pos == len(client._read_buffer) == 0


class _TrickleSocket:
    """A connected socket that hands out its bytes at most ``most`` at a time, then has nothing (EWOULDBLOCK)."""

    def __init__(self, data: bytes, most: int):
        self.data, self.most = data, most

    def recv(self, size: int) -> bytes:
        if not self.data:
            raise BlockingIOError
        chunk, self.data = self.data[:min(size, self.most)], self.data[min(size, self.most):]
        return chunk

    def pending(self) -> int:
        return 0

    def close(self) -> None:
        pass


def _publish_packet(topic: str, payload: bytes, qos: int, mid: int = 0, properties: bytes = b"\x00",
                    flags: int = 0) -> bytes:
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + (mid.to_bytes(2, "big") if qos else b"") + properties + payload
    length, size = b"", len(body)
    while True:
        size, byte = divmod(size, 128)
        length += bytes([byte | (128 if size else 0)])
        if not size:
            return bytes([0x30 | qos << 1 | flags]) + length + body


def _reading_client(data: bytes, most: int) -> tuple[bulk_client.BulkClient, list]:
    client = bulk_client.BulkClient(bulk_client.mqtt.CallbackAPIVersion.VERSION2, client_id="bulk-read",
                                    protocol=bulk_client.mqtt.MQTTv5, manual_ack=True)
    client._sock = _TrickleSocket(data, most)
    client._state = bulk_client.mqtt._ConnectionState.MQTT_CS_CONNECTED
    received: list = []
    client.on_message = lambda c, userdata, message: received.append(message)
    return client, received


@pytest.mark.parametrize("most", [1, 3, 7, 65536])
def test_packets_trickling_in_any_pieces_are_framed_whole_and_read_as_paho_reads_them(most):
    user_property = b"\x26\x00\x01k\x00\x01v"  # MQTT 5 user property k=v
    packets = [_publish_packet("emo7ion/v1/hall/cam-1/counts", b"{}" * 100, 1, mid=7),
               _publish_packet("a/b", b"x" * 20_000, 0, flags=0x01),  # retained, a remaining length of 3 bytes
               _publish_packet("a/props", b"p", 0, properties=bytes([len(user_property)]) + user_property),
               _publish_packet("a/dup", b"", 1, mid=65535, flags=0x08)]
    client, received = _reading_client(b"".join(packets), most)
    for _ in range(100_000):
        if len(received) == len(packets) or client.loop_read() != bulk_client.mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS:
            break
    assert [(m.topic, len(m.payload), m.qos, m.mid, m.retain, m.dup) for m in received] == [
        ("emo7ion/v1/hall/cam-1/counts", 200, 1, 7, False, False), ("a/b", 20_000, 0, 0, True, False),
        ("a/props", 1, 0, 0, False, False), ("a/dup", 0, 1, 65535, False, True)]
    plain, _, with_properties, _ = received
    assert type(plain) is not bulk_client.mqtt.MQTTMessage, "a camera's message takes the lean path"
    assert plain.properties.packetType == bulk_client.PacketTypes.PUBLISH and not plain.properties.json()
    assert plain.info.mid == 7 and not plain.info.is_published()
    assert type(with_properties) is bulk_client.mqtt.MQTTMessage, "a message with properties goes through paho's"
    assert with_properties.properties.UserProperty == [("k", "v")]
    assert client._read_pos == len(client._read_buffer) and client._in_packet["command"] == 0


def test_a_remaining_length_of_five_bytes_is_a_protocol_error_as_in_paho():
    client, received = _reading_client(b"\x30\xff\xff\xff\xff\x01" + b"x" * 64, 65536)
    assert client.loop_read() == bulk_client.mqtt.MQTTErrorCode.MQTT_ERR_PROTOCOL
    assert received == []


def test_a_batch_of_qos0_publishes_reaches_the_broker_as_each_one_would(broker):
    """The ingest's acks of a batch go out as one queued packet: every one arrives, in order, on its topic, whole."""
    stop = threading.Event()
    link = _link(broker.port, stop)
    watcher = Recorder(broker.port, "test/batch/#", client_id="batch-watcher")
    sizes = [0, 1, 100, 125, 126, 127, 128, 200, 16_500, 3] + [60 + n % 90 for n in range(400)]
    sent = [(f"test/batch/cam-{n % 37}", bytes([97 + n % 26]) * size) for n, size in enumerate(sizes)]
    try:
        link.start()
        assert wait_until(link.connected.is_set, 15, what="the link's connection")
        link.publish_many(sent[:5])
        link.publish_many(sent[5:])
        assert watcher.wait_for(lambda r: len(r.messages) == len(sent), 15), len(watcher.messages)
        assert [(topic, body) for topic, body, _ in watcher.messages] == sent
        with pytest.raises(ValueError):
            link.publish_many([("test/batch/+", b"x")])
    finally:
        watcher.close()
        link.stop()


def test_a_batch_while_disconnected_is_refused_as_paho_refuses_each():
    client = bulk_client.BulkClient(bulk_client.mqtt.CallbackAPIVersion.VERSION2, client_id="bulk-offline",
                                    protocol=bulk_client.mqtt.MQTTv5)
    client.publish_batch([("a/b", b"x"), ("a/c", b"y")])
    assert not client._out_packet
