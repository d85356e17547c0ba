"""``emo7ion demo``: every part real (authenticated Mosquitto, agents with the real detector and int8
model on simulated crowds, the aggregator on SQLite), and the API shows what the agents counted."""

import time

import httpx

from emo7ion.demo.crowd import CrowdSource
from emo7ion.demo.run import VENUES, Demo


def test_crowd_source_drifts_between_its_script_ends():
    source = CrowdSource("concert", period_s=100)
    start, middle = source.weights(0), source.weights(50)
    labels = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert start[labels.index("neutral")] > middle[labels.index("neutral")]
    assert middle[labels.index("happy")] > start[labels.index("happy")]
    frame = source.read()
    assert frame.shape == (720, 1280, 3) and frame.dtype.name == "uint8"


def test_crowd_people_keep_their_seat_and_face_until_they_leave():
    """The tracker can only count people if the simulated ones persist: same face, same place (give or take
    2 px of fidgeting) from frame to frame, and a new person only after someone leaves."""
    source = CrowdSource("concert", period_s=100, dwell_s=(1000.0, 1000.0))
    source.read()
    seats = {seat: (person.x, person.y, id(person)) for seat, person in source.seats.items()}
    for _ in range(5):
        source.read()
    assert 8 <= len(seats) <= 16
    assert {seat: (p.x, p.y, id(p)) for seat, p in source.seats.items()} == seats
    leaving = CrowdSource("concert", period_s=100, dwell_s=(0.0, 0.0))
    leaving.read()
    first = list(leaving.seats.values())  # held, so no id is reused
    leaving.read()
    assert first and not any(person is old for person in leaving.seats.values() for old in first)


def test_demo_end_to_end(tmp_path):
    demo = Demo(tmp_path, port=0, fps=2.0, window_s=2.0).start()
    try:
        with httpx.Client(base_url=demo.url, timeout=5) as http:  # one client: each new one costs ~0.1 s
            deadline = time.monotonic() + 60
            venues = []
            while time.monotonic() < deadline:
                venues = http.get("/api/venues").json()
                moods = [http.get(f"/api/venues/{v['venue']}/mood").json() for v in venues]
                if len(venues) == 2 and all(m["faces"] > 20 for m in moods):
                    break
                time.sleep(0.25)
            assert {v["venue"] for v in venues} == set(VENUES)
            assert all(m["faces"] > 20 and m["dominant"] for m in moods)
            cameras = http.get("/api/cameras").json()
            assert len(cameras) == 5 and all(c["state"] == "online" for c in cameras)
            assert "<html" in http.get("/").text.lower()
    finally:
        demo.stop.set()
        demo.shutdown()
    # Every face the dashboard counted was found and read by an agent: the totals agree.
    stored = demo.aggregator.ingest.stats.stored
    produced = sum(agent.stats.windows for agent in demo.agents)
    assert stored == produced
