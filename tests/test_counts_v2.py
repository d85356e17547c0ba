"""Counts v2 (people): what a camera with a tracker sends, read back exactly; every inconsistency that would let a
window claim more than it saw is refused; v1 counts still read as before."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from emo7ion.core import emotions, messages

START = dt.datetime(2026, 12, 2, 16, 0, tzinfo=dt.UTC)
TOPIC = messages.camera_topic("hall-a", "cam-1", "counts")


def window(**changes) -> messages.Window:
    counts = dict.fromkeys(emotions.LABELS, 0) | {"happy": 30, "sad": 10}
    votes = dict.fromkeys(emotions.LABELS, 0) | {"happy": 3, "sad": 1}
    base = messages.Window(venue="hall-a", camera="cam-1", seq=7, start=START, end=START + dt.timedelta(seconds=10),
                           frames=20, faces=40, counts=counts, mean_confidence=0.71, model={"sha256": "ab" * 32},
                           zone="front", people=4, entered=2, votes=votes, in_view=2.0, dwell_s=12.5, ended=1)
    return dataclasses.replace(base, **changes)


def body(**changes) -> bytes:
    document = json.loads(messages.window_payload(window()))
    document.update(changes)
    return json.dumps(document).encode()


def test_a_people_window_round_trips_as_v2():
    payload = messages.window_payload(window())
    document = json.loads(payload)
    assert document["v"] == 2 and document["people"] == 4 and document["votes"]["happy"] == 3
    assert messages.parse(TOPIC, payload) == window()


def test_a_withheld_people_window_keeps_its_head_count_and_nothing_emotional():
    withheld = window(counts=None, votes=None, mean_confidence=None, people=1, entered=1)
    document = json.loads(messages.window_payload(withheld))
    assert document["withheld"] is True and document["people"] == 1
    assert document["counts"] is None and document["votes"] is None and document["mean_confidence"] is None
    assert messages.parse(TOPIC, messages.window_payload(withheld)) == withheld


def test_a_v1_window_is_still_written_and_read_as_v1():
    v1 = window(people=None, entered=None, votes=None, in_view=None, dwell_s=None, ended=None)
    document = json.loads(messages.window_payload(v1))
    assert document["v"] == 1 and "people" not in document
    assert messages.parse(TOPIC, messages.window_payload(v1)) == v1
    assert not messages.parse(TOPIC, messages.window_payload(v1)).has_people


@pytest.mark.parametrize("changes, says", [
    ({"votes": dict.fromkeys(emotions.LABELS, 0) | {"happy": 5}}, "votes add up"),
    ({"people": 41, "votes": dict.fromkeys(emotions.LABELS, 0) | {"happy": 41}}, "cannot exceed faces"),
    ({"entered": 5}, "entered"),
    ({"dwell_s": None}, "dwell_s"),
    ({"ended": 0}, "dwell_s"),
    ({"in_view": -1}, "in_view"),
    ({"people": True}, "people"),
    ({"withheld": True, "counts": None}, "votes"),
    ({"withheld": True, "counts": None, "votes": None}, "mean_confidence"),
    ({"track": 3}, "unknown field"),
    ({"track_ids": [1, 2]}, "unknown field"),
])
def test_an_inconsistent_people_window_is_refused(changes, says):
    with pytest.raises(messages.MessageError, match=says) as error:
        messages.parse(TOPIC, body(**changes))
    assert error.value.reason == "schema"


def test_v2_needs_every_people_field_and_v1_may_not_carry_them():
    document = json.loads(messages.window_payload(window()))
    del document["entered"]
    with pytest.raises(messages.MessageError, match="missing field"):
        messages.parse(TOPIC, json.dumps(document).encode())
    with pytest.raises(messages.MessageError, match="unknown field"):
        messages.parse(TOPIC, body(v=1))


def test_only_counts_have_a_second_version():
    status = json.loads(messages.status_payload(messages.Status("hall-a", "cam-1", "online", START, None, None)))
    status["v"] = 2
    with pytest.raises(messages.MessageError) as error:
        messages.parse(messages.camera_topic("hall-a", "cam-1", "status"), json.dumps(status).encode())
    assert error.value.reason == "version"
    with pytest.raises(messages.MessageError) as error:
        messages.parse(TOPIC, body(v=3))
    assert error.value.reason == "version"
