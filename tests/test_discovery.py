"""Home Assistant MQTT discovery through a real Mosquitto: retained configs for each venue and zone, and
sensor states that follow the venue mood as Home Assistant would render them."""

import json
import re

import pytest
from mqtt_helpers import Recorder

from emo7ion.aggregator.config import load
from emo7ion.core import messages
from emo7ion.core.service.settings import ConfigError
from helpers import LiveAggregator

TEMPLATE = re.compile(r"^\{\{ value_json\.([a-z_]+)( \| default\(none\))? \}\}$")
KEYS = ("dominant", "positivity", "faces", "cameras_online")
PEOPLE_KEYS = ("people_in_view", "people_seen", "dwell_s")


def render(config: dict, payload: bytes) -> str:
    """What Home Assistant shows for ``config`` on ``payload``: the templates we publish are only
    ``{{ value_json.FIELD }}`` or, for a field a mood may leave out (the people figures),
    ``{{ value_json.FIELD | default(none) }}``; Jinja renders a JSON null as "None" (which HA reads as unknown)."""
    match = TEMPLATE.fullmatch(config["value_template"])
    body = json.loads(payload)
    value = body.get(match.group(1)) if match.group(2) else body[match.group(1)]
    return "None" if value is None else str(value)


def configs(recorder: Recorder) -> dict[str, tuple[dict, bool]]:
    with recorder._lock:
        return {t: (json.loads(p), r) for t, p, r in recorder.messages if t.startswith("homeassistant/")}


def latest(recorder: Recorder, topic: str) -> bytes | None:
    with recorder._lock:
        found = [p for t, p, _ in recorder.messages if t == topic]
    return found[-1] if found else None


@pytest.fixture
def live(tmp_path):
    live = LiveAggregator(tmp_path)
    yield live
    live.close()


def test_configs_retained_per_venue_and_zone_and_states_follow_mood(live):
    live.publish_status("hall-a", "cam-1", "online", zone="front")
    live.publish_window("hall-a", "cam-1", {"happy": 6, "neutral": 2}, zone="front")
    live.publish_window("hall-b", "cam-1", {"sad": 5})
    assert live.wait_stored(2)
    expected = {f"homeassistant/sensor/emo7ion_{venue}/{prefix}{key}/config"
                for venue, prefix in (("hall-a", ""), ("hall-a", "front_"), ("hall-b", "")) for key in KEYS}
    first = Recorder(live.broker.port, "homeassistant/#", client_id="ha-first")
    assert first.wait_for(lambda r: expected <= set(configs(r)), timeout=30), sorted(configs(first))
    first.close()

    # A Home Assistant that connects later gets every config retained, and the state topics they name.
    ha = Recorder(live.broker.port, "#", client_id="home-assistant")
    assert ha.wait_for(lambda r: expected <= set(configs(r)), timeout=10)
    found = configs(ha)
    assert all(retained for topic, (_, retained) in found.items() if topic in expected)
    unique_ids = {body["unique_id"] for body, _ in found.values()}
    assert len(unique_ids) == len(found) == len(expected)
    dominant, _ = found["homeassistant/sensor/emo7ion_hall-a/dominant/config"]
    front_faces, _ = found["homeassistant/sensor/emo7ion_hall-a/front_faces/config"]
    assert dominant["state_topic"] == "emo7ion/v1/hall-a/mood"
    assert front_faces["state_topic"] == "emo7ion/v1/hall-a/mood/front"
    assert dominant["device"]["identifiers"] == front_faces["device"]["identifiers"] == ["emo7ion.hall-a"]
    assert "5 min" in front_faces["name"] and front_faces["unit_of_measurement"] == "detections"
    assert dominant["availability_topic"] == live.service.link.status_topic
    assert ha.wait_for(lambda r: latest(r, dominant["availability_topic"]) == b"online", timeout=10)

    states = (dominant["state_topic"], front_faces["state_topic"])
    assert ha.wait_for(lambda r: None not in [latest(r, topic) for topic in states], timeout=30)
    front = messages.parse_mood(front_faces["state_topic"], latest(ha, front_faces["state_topic"]))
    assert (front.venue, front.zone, front.faces, front.window_s) == ("hall-a", "front", 8, 300)
    assert render(dominant, latest(ha, dominant["state_topic"])) == "happy"
    assert render(front_faces, latest(ha, front_faces["state_topic"])) == "8"

    # The crowd turns sad: the state Home Assistant renders changes with the next mood.
    live.publish_window("hall-a", "cam-1", {"sad": 30}, zone="front")
    assert ha.wait_for(lambda r: render(dominant, latest(r, dominant["state_topic"])) == "sad", timeout=30)
    # The zone's mood is a message of its own, published just after the venue's.
    assert ha.wait_for(lambda r: render(front_faces, latest(r, front_faces["state_topic"])) == "38", timeout=10)
    positivity, _ = found["homeassistant/sensor/emo7ion_hall-a/positivity/config"]
    assert float(render(positivity, latest(ha, positivity["state_topic"]))) == pytest.approx((6 - 30) / 38, abs=1e-3)

    # A clean stop says "offline" on the availability topic (a crash leaves it to the broker's will).
    live.service.stop()
    assert ha.wait_for(lambda r: latest(r, dominant["availability_topic"]) == b"offline", timeout=10)
    ha.close()


def test_people_sensors_appear_once_a_venue_has_people(live):
    """A venue of v1 cameras gets the four sensors it always had; once a camera sends people (v2 windows) its venue
    and zone get the people sensors too, named for what they count, reading the mood's people figures."""
    live.publish_window("hall-b", "cam-1", {"sad": 5})
    live.publish_window("hall-a", "cam-2", {"happy": 12, "neutral": 4}, zone="bar",
                        people={"people": 4, "entered": 3, "votes": {"happy": 3, "neutral": 1}, "in_view": 2.5,
                                "dwell_s": 41.0, "ended": 1})
    assert live.wait_stored(2, timeout=30)
    people = {f"homeassistant/sensor/emo7ion_hall-a/{prefix}{key}/config" for prefix in ("", "bar_")
              for key in PEOPLE_KEYS}
    ha = Recorder(live.broker.port, "#", client_id="ha-people")
    assert ha.wait_for(lambda r: people <= set(configs(r)), timeout=30), sorted(configs(ha))
    assert ha.wait_for(lambda r: latest(r, "emo7ion/v1/hall-a/mood/bar") is not None
                       and latest(r, "emo7ion/v1/hall-b/mood") is not None, timeout=30)
    found = configs(ha)
    assert not [t for t in found if t.startswith("homeassistant/sensor/emo7ion_hall-b/") and
                t.split("/")[-2] in PEOPLE_KEYS], "a v1-only venue got people sensors"
    assert {t for t in found if t.startswith("homeassistant/sensor/emo7ion_hall-b/")} == {
        f"homeassistant/sensor/emo7ion_hall-b/{key}/config" for key in KEYS}
    seen, _ = found["homeassistant/sensor/emo7ion_hall-a/people_seen/config"]
    in_view, _ = found["homeassistant/sensor/emo7ion_hall-a/bar_people_in_view/config"]
    dwell, _ = found["homeassistant/sensor/emo7ion_hall-a/dwell_s/config"]
    assert "seen by the cameras in the last 5 min" in seen["name"] and "two cameras counts twice" in seen["name"]
    assert in_view["name"].startswith("bar: People in view now") and "counts twice" in in_view["name"]
    assert dwell["unit_of_measurement"] == "s" and dwell["device_class"] == "duration"
    assert len({body["unique_id"] for body, _ in found.values()}) == len(found)
    assert render(seen, latest(ha, seen["state_topic"])) == "4"  # 1 already in view + 3 who entered
    assert render(in_view, latest(ha, in_view["state_topic"])) == "2.5"
    assert render(dwell, latest(ha, dwell["state_topic"])) == "41.0"
    # A mood without people figures (here hall-b's) renders as unknown through the same template.
    assert render(seen, latest(ha, "emo7ion/v1/hall-b/mood")) == "None"
    ha.close()


def test_discovery_can_be_turned_off(tmp_path):
    live = LiveAggregator(tmp_path, discovery=False)
    try:
        live.publish_window("hall-a", "cam-1", {"happy": 3})
        assert live.wait_stored(1)
        recorder = Recorder(live.broker.port, "#", client_id="ha-off")
        assert recorder.wait_for(lambda r: latest(r, "emo7ion/v1/hall-a/mood") is not None, timeout=15)
        assert messages.parse_mood("emo7ion/v1/hall-a/mood", latest(recorder, "emo7ion/v1/hall-a/mood")).faces == 3
        assert configs(recorder) == {}
        recorder.close()
    finally:
        live.close()


def test_discovery_settings_are_checked():
    assert load(None, {"discovery_prefix": "ha/prod"}, environ={}).discovery_prefix == "ha/prod"
    assert load(None, {}, environ={"EMO7ION_AGG__DISCOVERY": "false"}).discovery is False
    for bad in ("", "home/#", "/homeassistant", "homeassistant/"):
        with pytest.raises(ConfigError, match="discovery_prefix"):
            load(None, {"discovery_prefix": bad}, environ={})
    with pytest.raises(ConfigError, match="client_id"):
        load(None, {"client_id": "a/b"}, environ={})
