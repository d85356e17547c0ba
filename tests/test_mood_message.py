"""The mood contract: what the aggregator publishes on ``emo7ion/v1/{venue}/mood[/{zone}]`` is built and read
by ``core.messages`` alone, byte for byte as v1 always was, and a subscriber's parser refuses malformed moods."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from emo7ion.aggregator.store import Store
from emo7ion.aggregator.views import Pushed, Views
from emo7ion.core import emotions, messages

NOW = 1_750_000_000.0


def _window(seq: int, end: float, counts: dict[str, int], zone: str | None = None) -> messages.Window:
    full = {label: counts.get(label, 0) for label in emotions.LABELS}
    return messages.Window(venue="hall-a", camera="cam-1", seq=seq, start=dt.datetime.fromtimestamp(end - 10, dt.UTC),
                           end=dt.datetime.fromtimestamp(end, dt.UTC), frames=50, faces=sum(full.values()),
                           counts=full, mean_confidence=0.8, model={"sha256": "ab" * 32}, zone=zone)


@pytest.fixture
def moods(tmp_path):
    """The venue's and zone's mood from a real store: two windows now, one in the window before."""
    store = Store(str(tmp_path / "agg.sqlite"))
    store.add_windows([_window(0, NOW - 400, {"sad": 4}), _window(1, NOW - 60, {"happy": 6, "angry": 2}, "front"),
                       _window(2, NOW - 20, {"neutral": 3})])
    views = Views(store, offline_after_s=3600.0, mood_window_s=300.0)
    yield views.mood("hall-a", now=NOW), views.mood("hall-a", "front", now=NOW), views.mood("hall-a", "empty", now=NOW)
    store.close()


def _v1_bytes(document: dict) -> bytes:
    """How the aggregator serialised the mood before the contract moved to core (the v1 wire format)."""
    return json.dumps({"v": messages.VERSION, "type": "mood", **document}, separators=(",", ":")).encode()


def test_payload_is_the_v1_wire_format_and_round_trips(moods):
    venue, zone, empty = moods
    assert venue.faces == 11 and venue.dominant == "happy"
    assert venue.trend == pytest.approx((6 - 2) / 11 - (-1.0), abs=1e-4)
    assert empty.faces == 0 and empty.shares is None and empty.positivity is None and empty.trend is None
    for current in moods:
        payload = messages.mood_payload(current)
        assert payload == _v1_bytes(current.document())
        assert list(json.loads(payload)) == ["v", "type", "venue", "zone", "ts", "window_s", "faces", "cameras_online",
                                             "shares", "dominant", "positivity", "trend", "withheld_windows"]
        topic = messages.mood_topic(current.venue, current.zone)
        read = messages.parse_mood(topic, payload)
        assert read.same_as(current) and read.ts == dt.datetime.fromtimestamp(NOW, dt.UTC)
        assert messages.mood_payload(read) == payload


def test_same_as_ignores_only_the_time(moods):
    venue, zone, _ = moods
    assert venue.same_as(dataclasses.replace(venue, ts=dt.datetime.fromtimestamp(NOW + 30, dt.UTC)))
    assert not venue.same_as(dataclasses.replace(venue, cameras_online=2))
    assert not venue.same_as(zone) and not venue.same_as(None)
    pushed = Pushed()
    assert pushed.changed("topic", venue)
    pushed.mark("topic", venue)
    assert not pushed.changed("topic", dataclasses.replace(venue, ts=dt.datetime.fromtimestamp(NOW + 30, dt.UTC)))
    assert pushed.changed("topic", dataclasses.replace(venue, faces=12))
    pushed.forget()
    assert pushed.changed("topic", venue)


def _broken(payload: bytes, **changes) -> bytes:
    body = json.loads(payload)
    for key, value in changes.items():
        if value is KeyError:
            body.pop(key)
        else:
            body[key] = value
    return json.dumps(body).encode()


@pytest.mark.parametrize("changes, field", [
    ({"v": 2}, "version"), ({"v": True}, "version"), ({"type": "counts"}, "type"), ({"extra": 1}, "unknown"),
    ({"faces": KeyError}, "missing"), ({"venue": "hall-b"}, "venue"), ({"zone": "back"}, "zone"),
    ({"ts": "2025-06-15T15:06:40.000"}, "ts"), ({"ts": "yesterday"}, "ts"), ({"window_s": 0}, "window_s"),
    ({"window_s": "300"}, "window_s"), ({"faces": -1}, "faces"), ({"faces": 1.5}, "faces"),
    ({"cameras_online": True}, "cameras_online"), ({"shares": None}, "shares"),
    ({"shares": {"happy": 1.0}}, "shares"), ({"dominant": "joy"}, "dominant"), ({"dominant": None}, "dominant"),
    ({"positivity": 1.5}, "positivity"), ({"positivity": None}, "positivity"), ({"trend": float("nan")}, "trend"),
    ({"withheld_windows": -2}, "withheld_windows"),
])
def test_parser_rejects_malformed_moods_naming_the_field(moods, changes, field):
    venue = moods[0]
    payload = _broken(messages.mood_payload(venue), **changes)
    with pytest.raises(messages.MessageError, match=field):
        messages.parse_mood(messages.mood_topic("hall-a"), payload)


def test_parser_rejects_wrong_topics_and_garbage(moods):
    venue, _, empty = moods
    payload = messages.mood_payload(venue)
    for topic in ("emo7ion/v1/hall-a/cam-1/counts", "emo7ion/v2/hall-a/mood", "emo7ion/v1/Hall/mood",
                  "emo7ion/v1/hall-a/mood/front/x"):
        with pytest.raises(messages.MessageError):
            messages.parse_mood(topic, payload)
    for garbage in (b"", b"[]", b"\xff", b"{" * 5000, b" " * (messages.MAX_PAYLOAD_BYTES + 1)):
        with pytest.raises(messages.MessageError):
            messages.parse_mood(messages.mood_topic("hall-a"), garbage)
    # An empty window carries no shares: a dominant emotion or a positivity there is a lie.
    with pytest.raises(messages.MessageError, match="null"):
        messages.parse_mood(messages.mood_topic("hall-a", "empty"),
                            _broken(messages.mood_payload(empty), dominant="happy"))
    with pytest.raises(messages.MessageError, match="positivity"):
        messages.parse_mood(messages.mood_topic("hall-a", "empty"),
                            _broken(messages.mood_payload(empty), positivity=0.5))
