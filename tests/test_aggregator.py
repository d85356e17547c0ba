"""The aggregator end to end: real Mosquitto, real SQLite file, real HTTP server."""

import json
import time

import httpx
import pytest

from emo7ion.core import emotions
from helpers import LiveAggregator, stored_keys


def get(live, path: str, **kwargs):
    return httpx.get(live.url + path, timeout=10, **kwargs)


def test_windows_flow_to_the_api(live_aggregator):
    live = live_aggregator
    live.publish_status("hall-a", "cam-1", "online", zone="front")
    live.publish_window("hall-a", "cam-1", {"happy": 6, "neutral": 2, "sad": 2}, zone="front")
    live.publish_window("hall-a", "cam-2", {"happy": 4, "angry": 6})
    live.publish_window("hall-b", "cam-1", {"surprise": 3})
    assert live.wait_stored(3)

    venues = {v["venue"]: v for v in get(live, "/api/venues").json()}
    assert set(venues) == {"hall-a", "hall-b"} and venues["hall-a"]["cameras"] == 2
    assert venues["hall-a"]["zones"] == ["front"]

    mood = get(live, "/api/venues/hall-a/mood").json()
    assert mood["faces"] == 20 and mood["dominant"] == "happy"
    assert mood["shares"]["happy"] == pytest.approx(0.5) and mood["shares"]["angry"] == pytest.approx(0.3)
    assert mood["positivity"] == pytest.approx((10 - 8) / 20)
    assert sum(mood["shares"].values()) == pytest.approx(1.0)
    front = get(live, "/api/venues/hall-a/mood", params={"zone": "front"}).json()
    assert front["faces"] == 10 and front["positivity"] == pytest.approx((6 - 2) / 10)

    series = get(live, "/api/venues/hall-a/timeseries", params={"minutes": 10, "step": 60}).json()
    assert sum(p["faces"] for p in series["points"]) == 20
    assert list(series["points"][0]["counts"]) == list(emotions.LABELS)

    cams = {(c["venue"], c["camera"]): c for c in get(live, "/api/cameras").json()}
    assert cams[("hall-a", "cam-1")]["state"] == "online" and cams[("hall-a", "cam-1")]["zone"] == "front"
    live.publish_status("hall-a", "cam-1", "offline")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        cams = {(c["venue"], c["camera"]): c for c in get(live, "/api/cameras", params={"venue": "hall-a"}).json()}
        if cams[("hall-a", "cam-1")]["state"] == "offline":
            break
        time.sleep(0.1)
    assert cams[("hall-a", "cam-1")]["state"] == "offline"

    assert get(live, "/healthz").json()["broker_connected"] is True
    metrics = get(live, "/metrics").text
    assert "emo7ion_windows_stored_total 3" in metrics
    assert get(live, "/openapi.json").status_code == 200


def test_duplicates_and_malformed_messages(live_aggregator):
    live = live_aggregator
    end = time.time()
    live.publish_window("hall-a", "cam-1", {"happy": 3}, end=end)
    live.seq[("hall-a", "cam-1")] = 0
    live.publish_window("hall-a", "cam-1", {"happy": 3}, end=end)  # a QoS 1 redelivery: same seq, same window
    bad = [
        ("emo7ion/v1/hall-a/cam-1/counts", b"\x00\xff not json"),
        ("emo7ion/v1/hall-a/cam-1/counts", json.dumps({"v": 3, "type": "counts"}).encode()),
        ("emo7ion/v1/hall-a/cam-1/counts", json.dumps({"v": 1, "type": "counts", "venue": "hall-a",
                                                       "camera": "cam-1"}).encode()),
        ("emo7ion/v1/hall-a/cam-1/counts", b"[" * 5000),
        ("emo7ion/v1/hall-a/cam-9/counts", json.dumps({"v": 1, "type": "counts", "venue": "hall-a",
                                                       "camera": "cam-1"}).encode()),
        ("emo7ion/v1/hall-a/cam-1/selfie", b"{}"),
    ]
    for topic, payload in bad:
        live.camera.publish(topic, payload, qos=1).wait_for_publish(5)
    live.publish_window("hall-a", "cam-1", {"sad": 4})  # ingestion goes on after the garbage
    deadline = time.monotonic() + 15
    stats = live.service.ingest.stats
    while time.monotonic() < deadline and (stats.stored + stats.duplicates < 3 or sum(stats.rejected.values()) < 6):
        time.sleep(0.05)
    assert stats.stored == 2 and stats.duplicates == 1
    assert sum(stats.rejected.values()) == 6
    assert stats.rejected["json"] >= 1 and stats.rejected["version"] == 1 and stats.rejected["size"] == 1
    assert stats.rejected["topic"] == 1 and stats.rejected["source"] == 1 and stats.rejected["schema"] == 1
    assert stored_keys(live.service.config.db) == [("hall-a", "cam-1", 0), ("hall-a", "cam-1", 1)]
    assert 'emo7ion_messages_rejected_total{reason="version"} 1' in get(live, "/metrics").text


def test_restart_loses_nothing_published_meanwhile(tmp_path):
    live = LiveAggregator(tmp_path)
    try:
        for _ in range(3):
            live.publish_window("hall-a", "cam-1", {"happy": 3})
        assert live.wait_stored(3)
        config = live.service.config
        live.service.stop()
        for _ in range(5):  # published while the aggregator is down: the broker queues them for its session
            live.publish_window("hall-a", "cam-1", {"neutral": 3})
        from emo7ion.aggregator.service import Aggregator

        live.service = Aggregator(config).start()
        assert live.wait_stored(5)
        assert [k[2] for k in stored_keys(live.service.config.db)] == list(range(8))
    finally:
        live.close()


def test_one_stop_event_ends_every_part_and_windows_flushed_meanwhile_are_stored(live_aggregator):
    """The process's one stop event (the command and the demo make it and pass it down): setting it ends the mood
    publisher, retention and the live streams within a tick, while ingest goes on storing what agents sharing the
    process flush into it until ``stop`` disconnects; then the writer stores what it holds and ends."""
    live = live_aggregator
    service = live.service
    live.publish_window("hall-a", "cam-1", {"happy": 3})
    assert live.wait_stored(1)
    with httpx.stream("GET", live.url + "/api/stream", params={"venue": "hall-a"}, timeout=10) as stream:
        service.stop_event.set()
        began = time.monotonic()
        events = list(stream.iter_lines())
    assert time.monotonic() - began < 5 and any(line.startswith("event: mood") for line in events)
    service.moods.thread.join(timeout=5)
    service._retention.join(timeout=5)
    assert not service.moods.thread.is_alive() and not service._retention.is_alive()
    for _ in range(3):  # an agent in the same process flushing its outbox after the event
        live.publish_window("hall-a", "cam-1", {"neutral": 3})
    assert live.wait_stored(4)
    service.stop()
    assert not service.ingest._writer.is_alive()
    assert [k[2] for k in stored_keys(service.config.db)] == [0, 1, 2, 3]


def test_api_rejects_bad_input_with_4xx(tmp_path):
    live = LiveAggregator(tmp_path, token="s3cret")
    try:
        live.publish_window("hall-a", "cam-1", {"happy": 3})
        assert live.wait_stored(1)
        auth = {"Authorization": "Bearer s3cret"}
        assert get(live, "/api/venues").status_code == 401
        assert get(live, "/api/venues", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert get(live, "/api/venues", headers=auth).status_code == 200
        assert get(live, "/api/venues", cookies={"emo7ion_token": "s3cret"}).status_code == 200
        assert get(live, "/api/venues", params={"token": "s3cret"}).status_code == 401  # never in a URL
        cases = [("/api/venues/Hall%20A/mood", {}), ("/api/venues/hall-a/mood", {"minutes": -5}),
                 ("/api/venues/hall-a/timeseries", {"minutes": 10**9}),
                 ("/api/venues/hall-a/timeseries", {"minutes": 10000, "step": 1}),
                 ("/api/venues/hall-a/timeseries", {"step": "abc"}), ("/api/venues/hall-a/mood", {"zone": "A B"}),
                 ("/api/venues/nowhere/mood", {}), ("/api/cameras", {"venue": "x/y"})]
        for path, params in cases:
            response = get(live, path, params=params, headers=auth)
            assert 400 <= response.status_code < 500, (path, params, response.status_code)
        assert get(live, "/healthz").status_code == 200  # health needs no token
    finally:
        live.close()


def test_stream_sends_mood_and_cameras(live_aggregator):
    live = live_aggregator
    live.publish_window("hall-a", "cam-1", {"happy": 5})
    assert live.wait_stored(1)
    events = []
    with httpx.stream("GET", live.url + "/api/stream", params={"venue": "hall-a"}, timeout=10) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                events.append(line[7:])
            if line.startswith("data: ") and events[-1] == "mood":
                assert json.loads(line[6:])["dominant"] == "happy"
            if {"mood", "cameras"} <= set(events):
                break
    assert events[:2] == ["mood", "cameras"]


def test_a_message_the_database_refuses_does_not_block_the_stream(live_aggregator):
    import sqlite3

    live = live_aggregator
    store = live.service.store
    real_add = store.add_windows

    def refuse_cam_9(windows, received=None, **options):
        if any(w.camera == "cam-9" for w in windows):
            raise sqlite3.IntegrityError("refused by a constraint")
        return real_add(windows, received, **options)

    store.add_windows = refuse_cam_9
    live.publish_window("hall-a", "cam-1", {"happy": 3})
    live.publish_window("hall-a", "cam-9", {"happy": 3})
    live.publish_window("hall-a", "cam-2", {"sad": 3})
    deadline = time.monotonic() + 15
    stats = live.service.ingest.stats
    while time.monotonic() < deadline and (stats.stored < 2 or not stats.rejected["store"]):
        time.sleep(0.05)
    assert stats.stored == 2 and stats.rejected["store"] == 1
    assert {k[1] for k in stored_keys(live.service.config.db)} == {"cam-1", "cam-2"}


def test_api_docs_show_the_response_schemas(live_aggregator):
    """/docs reads /openapi.json: each route names its response model, the mood one field for field the v1 mood."""
    live = live_aggregator
    live.publish_window("hall-a", "cam-1", {"happy": 3})
    assert live.wait_stored(1)
    schema = get(live, "/openapi.json").json()
    models = schema["components"]["schemas"]
    assert set(models["MoodOut"]["properties"]) == set(get(live, "/api/venues/hall-a/mood").json())
    assert set(models["CameraOut"]["properties"]) == set(get(live, "/api/cameras").json()[0])
    assert set(models["VenueOut"]["properties"]) == set(get(live, "/api/venues").json()[0])
    assert set(models["PointOut"]["properties"]) == set(get(live, "/api/venues/hall-a/timeseries").json()["points"][0])
    meta = get(live, "/api/meta").json()  # what the dashboard draws with, instead of its own copies
    assert meta["labels"] == list(emotions.LABELS) and meta["mood_window_s"] == live.service.config.mood_window_s
    ok = schema["paths"]["/api/venues/{venue}/mood"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/MoodOut")


def test_the_api_serves_people_where_cameras_send_them(live_aggregator):
    """Through the real broker and ingest: a v2 camera's people reach the API's mood; a venue of v1 cameras has the
    people fields null; /docs says what each figure counts."""
    live = live_aggregator
    live.publish_window("hall-a", "cam-1", {"happy": 6, "neutral": 2})  # an old agent
    live.publish_window("hall-a", "cam-2", {"angry": 9, "sad": 3}, people={
        "people": 4, "entered": 4, "votes": {"angry": 3, "sad": 1}, "in_view": 1.2, "dwell_s": None, "ended": 0})
    live.publish_window("hall-b", "cam-1", {"surprise": 3})
    assert live.wait_stored(3, timeout=30)
    mood = get(live, "/api/venues/hall-a/mood").json()
    assert (mood["faces"], mood["people_seen"], mood["votes"], mood["dwell_s"]) == (20, 4, 4, None)
    assert mood["people_in_view"] == 1.2  # cam-2 is online (heard from just now), its one window
    # Each camera's own mix, equal weight: cam-1's faces (3/4 happy) and cam-2's votes (3/4 angry).
    assert mood["shares"]["happy"] == pytest.approx(0.375) and mood["shares"]["angry"] == pytest.approx(0.375)
    old = get(live, "/api/venues/hall-b/mood").json()
    assert old["faces"] == 3 and [old[k] for k in ("people_in_view", "people_seen", "votes", "dwell_s")] == [None] * 4
    fields = get(live, "/openapi.json").json()["components"]["schemas"]["MoodOut"]["properties"]
    assert "counts twice" in fields["people_seen"]["description"] and "not a head count" in fields["faces"][
        "description"]
