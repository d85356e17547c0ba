"""The acknowledgement contract (core/messages.py): an aggregator names the seqs of one camera it has finished
with, as ranges; a camera reads nothing but a well-formed ack for itself."""

import json

import pytest

from emo7ion.core import messages


def test_seqs_collapse_into_ranges_and_round_trip():
    payloads = messages.ack_payloads("hall", "cam-1", "aggregator-a", [7, 1, 3, 2, 2, 9, 8, 12])
    assert len(payloads) == 1
    ack = messages.parse_ack(messages.ack_topic("hall", "cam-1"), payloads[0])
    assert ack.ranges == ((1, 3), (7, 9), (12, 12))
    assert ack.count == 7 and ack.covers(8) and not ack.covers(4) and not ack.covers(13)
    assert ack.aggregator == "aggregator-a"


def test_many_gaps_split_into_several_payloads_each_within_the_size_limit():
    seqs = range(0, 2 * 250 + 1, 2)  # 251 single-seq ranges
    payloads = messages.ack_payloads("hall", "cam-1", "agg", seqs)
    assert len(payloads) == 3
    assert all(len(p) <= messages.MAX_PAYLOAD_BYTES for p in payloads)
    covered = [r for p in payloads for r in messages.parse_ack(messages.ack_topic("hall", "cam-1"), p).ranges]
    assert [low for low, _ in covered] == list(seqs)
    assert messages.ack_payloads("hall", "cam-1", "agg", []) == []


def test_ack_topic_is_recognised_and_never_parsed_as_a_camera_message():
    topic = messages.ack_topic("hall", "cam-1")
    assert topic == "emo7ion/v1/hall/cam-1/ack" and messages.is_ack_topic(topic)
    assert not messages.is_ack_topic(messages.camera_topic("hall", "cam-1", "counts"))
    with pytest.raises(messages.MessageError):
        messages.parse(topic, messages.ack_payloads("hall", "cam-1", "agg", [1])[0])


@pytest.mark.parametrize("change", [
    {"ranges": [[3, 1]]}, {"ranges": [[1, 2], [2, 3]]}, {"ranges": [[4, 5], [1, 2]]}, {"ranges": []},
    {"ranges": [[1, True]]}, {"ranges": [[-1, 2]]}, {"ranges": [[1, 2, 3]]}, {"camera": "cam-2"},
    {"type": "counts"}, {"aggregator": ""}, {"extra": 1}, {"v": 2}])
def test_malformed_acks_are_refused(change):
    body = json.loads(messages.ack_payloads("hall", "cam-1", "agg", [1, 2])[0])
    body.update(change)
    with pytest.raises(messages.MessageError):
        messages.parse_ack(messages.ack_topic("hall", "cam-1"), json.dumps(body).encode())


def test_an_ack_on_another_topic_is_refused():
    payload = messages.ack_payloads("hall", "cam-1", "agg", [1])[0]
    with pytest.raises(messages.MessageError):
        messages.parse_ack(messages.camera_topic("hall", "cam-1", "counts"), payload)
