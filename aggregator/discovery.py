"""Home Assistant MQTT discovery: retained sensor configs for each venue (and zone), so Home Assistant
shows the mood with no hand-written YAML.

No new state topic: each sensor reads the retained mood topic (``emo7ion/v1/{venue}/mood[/{zone}]``)
through a ``value_template``, and its availability follows the aggregator's status topic (its last will).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from emo7ion.core import messages
from emo7ion.core.service.version import version as emo7ion_version

log = logging.getLogger(__name__)

COMPONENT = "sensor"


@dataclass(frozen=True)
class Sensor:
    key: str          # the mood document's field, and the last part of the object id
    name: str
    extra: dict
    optional: bool = False  # a people figure: absent from moods without people data (HA shows unknown)


def sensors(window_s: float) -> tuple[Sensor, ...]:
    minutes = f"{window_s / 60:g}"
    return (
        Sensor("dominant", "Dominant emotion", {"icon": "mdi:emoticon-outline"}),
        Sensor("positivity", "Positivity", {"state_class": "measurement", "icon": "mdi:thumbs-up-down",
                                            "suggested_display_precision": 2}),
        Sensor("faces", f"Face detections in the last {minutes} min",
               {"state_class": "measurement", "unit_of_measurement": "detections", "icon": "mdi:face-recognition"}),
        Sensor("cameras_online", "Cameras online", {"state_class": "measurement", "icon": "mdi:cctv"}),
    )


def people_sensors(window_s: float) -> tuple[Sensor, ...]:
    """Announced for a venue (or zone) once its mood carries people figures (a camera sent v2 windows): a venue
    of v1 cameras gets exactly the four sensors it always had. The names say what is counted, including that
    the cameras' figures are summed, so one person seen by two cameras counts twice."""
    minutes = f"{window_s / 60:g}"
    return (
        Sensor("people_in_view", "People in view now (summed over cameras: one seen by two counts twice)",
               {"state_class": "measurement", "unit_of_measurement": "people", "icon": "mdi:account-group",
                "suggested_display_precision": 1}, optional=True),
        Sensor("people_seen", f"People seen by the cameras in the last {minutes} min (one seen by two cameras "
                              "counts twice)",
               {"state_class": "measurement", "unit_of_measurement": "people", "icon": "mdi:account-multiple"},
               optional=True),
        Sensor("dwell_s", "Time in view of people who left (mean of per-window medians)",
               {"state_class": "measurement", "device_class": "duration", "unit_of_measurement": "s",
                "icon": "mdi:timer-outline", "suggested_display_precision": 0}, optional=True),
    )


def object_id(key: str, zone: str | None) -> str:
    return key if zone is None else f"{zone}_{key}"


def config_topic(prefix: str, venue: str, zone: str | None, key: str) -> str:
    """``{prefix}/sensor/emo7ion_{venue}/{object_id}/config``: one node per venue, ids in HA's [a-z0-9_-]."""
    return f"{prefix}/{COMPONENT}/emo7ion_{messages.check_id(venue, 'venue')}/{object_id(key, zone)}/config"


def sensor_config(sensor: Sensor, venue: str, zone: str | None, availability_topic: str, version: str) -> dict:
    """One sensor's discovery payload. Ids use '.', which venue and zone ids cannot contain, so they never clash."""
    where = "" if zone is None else f"{zone}: "
    return {
        "name": f"{where}{sensor.name}",
        "unique_id": f"emo7ion.{venue}.{zone or ''}.{sensor.key}",
        "state_topic": messages.mood_topic(venue, zone),
        # HA reads a rendered "None" (no faces in the window yet, no people figures) as "unknown".
        "value_template": (f"{{{{ value_json.{sensor.key} | default(none) }}}}" if sensor.optional
                           else f"{{{{ value_json.{sensor.key} }}}}"),
        "availability_topic": availability_topic,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {"identifiers": [f"emo7ion.{venue}"], "name": f"Emo7ion {venue}", "manufacturer": "Emo7ion",
                   "model": "venue mood", "sw_version": version},
        "origin": {"name": "emo7ion", "sw_version": version},
        **sensor.extra,
    }


class Discovery:
    """Announces a venue's (or zone's) sensors once per broker connection, before its first mood."""

    def __init__(self, publish, prefix: str, availability_topic: str, window_s: float):
        """``publish(topic, payload)``: retained at QoS 1 on the aggregator's connection."""
        self.publish, self.prefix, self.availability_topic = publish, prefix, availability_topic
        self.sensors = sensors(window_s)
        self.people_sensors = people_sensors(window_s)
        self.version = emo7ion_version()
        self._announced: set[tuple[str, str | None, bool]] = set()

    def forget(self) -> None:
        """After a reconnect: the broker may have lost retained messages (a broker without persistence)."""
        self._announced.clear()

    def announce(self, venue: str, zone: str | None, people: bool = False) -> None:
        """The mood sensors, and with ``people`` (the mood carries people figures) the people sensors too."""
        for kind, group in ((False, self.sensors), (True, self.people_sensors)):
            if (kind and not people) or (venue, zone, kind) in self._announced:
                continue
            for sensor in group:
                body = sensor_config(sensor, venue, zone, self.availability_topic, self.version)
                self.publish(config_topic(self.prefix, venue, zone, sensor.key),
                             json.dumps(body, separators=(",", ":")))
            self._announced.add((venue, zone, kind))
            log.info("Home Assistant discovery: %d %ssensors for %s%s under %s/", len(group),
                     "people " if kind else "", venue, "" if zone is None else f"/{zone}", self.prefix)
