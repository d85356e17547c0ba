"""What each identity may publish and read, as Mosquitto ACL rules: a camera writes only its own
topics, the aggregator reads every camera and writes venue mood, a viewer reads mood."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from emo7ion.core.messages import AGGREGATOR_STATUS_ROOT, KINDS, ROOT, check_id

DISCOVERY_CONFIGS = "homeassistant/sensor/+/+/config"
"""Home Assistant MQTT discovery under its default prefix (aggregator/discovery.py)."""


def camera_rules(venue: str, camera: str) -> list[str]:
    """Publish its counts, status (its will included) and health and nothing else: no other sub-topic, so a
    camera holds at most three retained messages on the broker; read nothing."""
    prefix = f"{ROOT}/{check_id(venue, 'venue')}/{check_id(camera, 'camera')}"
    return [f"topic write {prefix}/{kind}" for kind in KINDS]


def aggregator_rules() -> list[str]:
    """Read everything under the root, shared subscriptions included (Mosquitto checks each delivered
    message's own topic), and publish only venue mood, its own availability and Home Assistant discovery."""
    return [f"topic read {ROOT}/#", f"topic write {ROOT}/+/mood", f"topic write {ROOT}/+/mood/+",
            f"topic write {AGGREGATOR_STATUS_ROOT}/+/status", f"topic write {DISCOVERY_CONFIGS}"]


def viewer_rules() -> list[str]:
    """A dashboard (or Home Assistant) reads venue mood, per venue and per zone, the aggregators' availability
    and their discovery configs; nothing from cameras."""
    return [f"topic read {ROOT}/+/mood", f"topic read {ROOT}/+/mood/+", f"topic read {AGGREGATOR_STATUS_ROOT}/+/status",
            f"topic read {DISCOVERY_CONFIGS}"]


def users(acl_file: str | Path) -> set[str]:
    """The usernames that have a block in the ACL file."""
    path = Path(acl_file)
    if not path.is_file():
        raise FileNotFoundError(f"ACL file {path} does not exist")
    return {line.split(None, 1)[1].strip() for line in path.read_text().splitlines()
            if line.startswith("user ") and len(line.split(None, 1)) == 2}


def append(acl_file: str | Path, username: str, rules: list[str], comment: str) -> None:
    """Add one ``user`` block; a user that already has one keeps it (its rules do not change)."""
    path = Path(acl_file)
    if username in users(path):
        return
    if any(char.isspace() for char in username):
        raise ValueError(f"username {username!r} may not contain spaces (the ACL file is space separated)")
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    block = "\n".join([f"# {comment} (added {stamp})", f"user {username}", *rules])
    text = path.read_text()
    blank_line = "" if not text or text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n"
    with path.open("a") as handle:
        handle.write(f"{blank_line}{block}\n")
