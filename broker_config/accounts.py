"""Who may connect to a broker directory: one username per camera, aggregator or dashboard viewer, each
with a fresh random password and its ACL block. A running broker applies changes on SIGHUP."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from emo7ion.broker_config import acl, credentials
from emo7ion.broker_config.credentials import Credentials
from emo7ion.broker_config.layout import BrokerLayout
from emo7ion.core.messages import RESERVED_CAMERA_IDS, camera_client_id, check_id


def camera_username(venue: str, camera: str) -> str:
    """Also the camera's client id (core.messages.camera_client_id, whose id rules it shares): the broker config
    makes every client's id its user name."""
    return camera_client_id(venue, camera)


def aggregator_username(name: str) -> str:
    return f"aggregator.{check_id(name, 'aggregator name')}"


def viewer_username(name: str) -> str:
    return f"viewer.{check_id(name, 'viewer name')}"


VENUES_FILE = "venues.toml"
"""In the broker directory: each camera account's zone (``add-camera --zone``), as the aggregator's ``[venues]``
tables; the aggregator reads it with ``venues_file`` (issue 20: a camera's zone is declared, never its choice)."""


def add_camera(directory: str | Path, venue: str, camera: str, rotate: bool = False,
               zone: str | None = None) -> Credentials:
    """Credentials for one camera, which may publish only under ``emo7ion/v1/{venue}/{camera}/`` and read
    only its own ``.../ack``. ``rotate`` gives an existing camera a new password (the old one stops working).
    ``zone``: the camera's zone, recorded in ``DIR/venues.toml`` for the aggregator (a camera given one again
    moves there)."""
    if camera in RESERVED_CAMERA_IDS:  # before camera_username, whose error does not say why
        raise ValueError(f"camera id {camera!r} is reserved: emo7ion/v1/{venue}/{camera}/... are venue mood topics")
    username = camera_username(venue, camera)
    if zone is not None:
        check_id(zone, "zone")
    credentials = _add(directory, username, acl.camera_rules(venue, camera), f"camera {venue}/{camera}", rotate)
    if zone is not None:
        set_zone(directory, venue, camera, zone)
    return credentials


def set_zone(directory: str | Path, venue: str, camera: str, zone: str) -> Path:
    """Record ``camera``'s zone in the broker directory's ``venues.toml`` (written whole, atomically)."""
    layout = BrokerLayout.load(directory)
    path = layout.directory / VENUES_FILE
    with layout.locked():
        venues = tomllib.loads(path.read_text()).get("venues", {}) if path.is_file() else {}
        venues.setdefault(check_id(venue, "venue"), {})[check_id(camera, "camera")] = check_id(zone, "zone")
        lines = ["# Each camera account's zone (emo7ion broker add-camera --zone). The aggregator reads it with",
                 f'# venues_file = "{path}" (or copy these tables into its [venues]).']
        for name in sorted(venues):
            lines += ["", f"[venues.{name}]"] + [f"{cam} = {json.dumps(venues[name][cam])}"
                                                 for cam in sorted(venues[name])]
        temporary = path.with_suffix(".tmp")
        temporary.write_text("\n".join(lines) + "\n")
        os.replace(temporary, path)
    return path


def add_aggregator(directory: str | Path, name: str, rotate: bool = False) -> Credentials:
    """Credentials for an aggregator: reads every camera (plain or ``$share/{group}/...`` subscriptions),
    publishes venue mood, its own status and Home Assistant discovery configs.

    The broker makes a client's id its user name (``use_username_as_clientid``), so the user name is also
    the aggregator's persistent session: aggregators splitting one stream (``--shared-group``) each need
    their own account (``add-aggregator DIR central-1``, ``central-2``, ...); two sharing one would take
    each other's connection over."""
    return _add(directory, aggregator_username(name), acl.aggregator_rules(), f"aggregator {name}", rotate)


def add_viewer(directory: str | Path, name: str, rotate: bool = False) -> Credentials:
    """Credentials for a dashboard: reads venue mood only, publishes nothing."""
    return _add(directory, viewer_username(name), acl.viewer_rules(), f"viewer {name}", rotate)


def _add(directory: str | Path, username: str, rules: list[str], what: str, rotate: bool) -> Credentials:
    layout = BrokerLayout.load(directory)
    with layout.locked():
        known = credentials.usernames(layout.passwd)
        if username in known and not rotate:
            raise ValueError(f"{what} already has a password in {layout.passwd} (user {username}); "
                             f"pass --rotate (rotate=True) to replace it")
        if rotate and username not in known:
            raise ValueError(f"{what} has no password in {layout.passwd} to rotate; add it without --rotate")
        # Rules first: a user never exists without them (and without rules, Mosquitto denies everything).
        acl.append(layout.acl, username, rules, what)
        password = credentials.new_password()
        credentials.set_password(layout.passwd, username, password)
    return Credentials(username, password)
