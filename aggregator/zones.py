"""Which zone a camera's windows count for: declared by the operator, never chosen by the camera (issue 20).

A venue listed in the ``[venues]`` table declares each camera's zone (``[venues.hall] cam-1 = "front"``; a camera
not listed, or listed with ``""``, has none). There a window naming another zone is refused ("zone"), a window
naming none is stored under the camera's declared zone, and the venue's mood topics and Home Assistant entities
exist only for its declared zones.

A venue not in the table (every deployment from before the table) keeps working: the first zone a camera reports
becomes its zone (the ``cameras`` row's zone, kept from then on), and a later window naming another zone is refused.
A camera with stolen credentials can so claim at most one zone, once, and never hop from zone to zone.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from emo7ion.core import messages

UNDECLARED = object()
"""``Zones.declared``'s answer for a venue the ``[venues]`` table does not list."""


@dataclass(frozen=True)
class Decision:
    """A window's zone as judged: refused (``refuse``), or stored under ``zone``; ``force`` says the camera's row
    takes that zone whatever it held (a declared zone), else the row keeps its first zone."""

    refuse: bool
    zone: str | None
    force: bool


class Zones:
    """The ``[venues]`` table: venue -> {camera: zone or None}."""

    def __init__(self, venues: dict[str, dict[str, str | None]] | None = None, judging: bool = True):
        """``judging`` False (the aggregator's ``check_windows`` off, to test the schema alone): every window keeps
        the zone it names and none is refused."""
        self.venues = {venue: {camera: zone or None for camera, zone in cameras.items()}
                       for venue, cameras in (venues or {}).items()}
        self.judging = judging

    def declared(self, venue: str, camera: str):
        """The camera's declared zone (None: none), or ``UNDECLARED`` when its venue is not in the table."""
        if venue not in self.venues:
            return UNDECLARED
        return self.venues[venue].get(camera)

    def venue_zones(self, venue: str) -> set[str] | None:
        """The zones declared for ``venue``, or None when the venue is not in the table (any zone its cameras hold)."""
        if venue not in self.venues:
            return None
        return {zone for zone in self.venues[venue].values() if zone}

    def judge(self, venue: str, camera: str, zone: str | None, current: str | None) -> Decision:
        """A window (or status) of ``camera`` naming ``zone``; ``current``: the zone its ``cameras`` row holds."""
        declared = self.declared(venue, camera)
        if not self.judging:
            return Decision(refuse=False, zone=zone, force=False)
        if declared is UNDECLARED:
            return Decision(refuse=zone is not None and current is not None and zone != current, zone=zone,
                            force=False)
        return Decision(refuse=zone is not None and zone != declared, zone=declared, force=True)


def parse(table: dict) -> dict[str, dict[str, str | None]]:
    """The ``venues`` setting checked: venue and camera ids, each zone an id or ``""`` (none). A ValueError names
    the bad key."""
    venues: dict[str, dict[str, str | None]] = {}
    for venue, cameras in table.items():
        messages.check_id(venue, f"venues.{venue}: venue")
        if not isinstance(cameras, dict):
            raise ValueError(f"venues.{venue} must be a table of CAMERA = \"ZONE\", got {cameras!r}")
        venues[venue] = {}
        for camera, zone in cameras.items():
            messages.check_id(camera, f"venues.{venue}.{camera}: camera")
            if zone is not None and not isinstance(zone, str):
                raise ValueError(f"venues.{venue}.{camera}={zone!r} must be a zone id or \"\" (no zone)")
            if zone:
                messages.check_id(zone, f"venues.{venue}.{camera}: zone")
            venues[venue][camera] = zone or None
    return venues


def read_file(path: str | Path) -> dict[str, dict[str, str | None]]:
    """The ``[venues]`` tables of a TOML file (what ``emo7ion broker add-camera --zone`` writes); a ValueError names
    the file."""
    try:
        table = tomllib.loads(Path(path).read_text()).get("venues", {})
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"venues_file={str(path)!r}: {getattr(error, 'strerror', None) or error}") from None
    try:
        if not isinstance(table, dict):
            raise ValueError(f"venues must be a table of [venues.VENUE] tables, got {table!r}")
        return parse(table)
    except ValueError as error:
        raise ValueError(f"venues_file={str(path)!r}: {error}") from None


def merge(base: dict[str, dict[str, str | None]], over: dict[str, dict[str, str | None]]
          ) -> dict[str, dict[str, str | None]]:
    """``over``'s cameras on top of ``base``'s, venue by venue."""
    merged = {venue: dict(cameras) for venue, cameras in base.items()}
    for venue, cameras in over.items():
        merged.setdefault(venue, {}).update(cameras)
    return merged
