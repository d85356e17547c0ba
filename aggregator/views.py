"""The aggregator's one read side: what the HTTP routes, the live stream and the mood publisher show, read from
the store in one place. It owns the ISO times, the online rule (a camera is online while its status says so and
it was heard from within ``offline_after_s``) and "changed since the last push"."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

from emo7ion.aggregator.mood import dominant, positivity, shares
from emo7ion.aggregator.store import Store, Totals
from emo7ion.core import messages


def iso(ts: float | None) -> str | None:
    """A store time (epoch seconds) as the API and the payloads write it."""
    return None if ts is None else messages.utc_iso(dt.datetime.fromtimestamp(ts, dt.UTC))


def camera_state(stored_state: str | None, last_seen: float | None, offline_after_s: float, now: float) -> str:
    """offline (its status or last will said so), unknown (not heard from lately) or online."""
    if stored_state == "offline":
        return "offline"
    stale = last_seen is None or now - last_seen > offline_after_s
    return "unknown" if stale else "online"


def online_count(cameras: list[dict], zone: str | None = None) -> int:
    return sum(1 for c in cameras if c["state"] == "online" and (zone is None or c["zone"] == zone))


class Views:
    """Venues, cameras with their state, the mood of a venue or zone over a window, and time series."""

    def __init__(self, store: Store, offline_after_s: float, mood_window_s: float):
        self.store, self.offline_after_s, self.mood_window_s = store, offline_after_s, mood_window_s

    def cameras(self, venue: str | None = None, now: float | None = None) -> list[dict]:
        now = time.time() if now is None else now
        return [{**dataclasses.asdict(row), "state": camera_state(row.state, row.last_seen, self.offline_after_s, now),
                 "last_seen": iso(row.last_seen)} for row in self.store.cameras(venue)]

    def venues(self) -> list[dict]:
        """Each venue with its zones, camera count, cameras online and last window's end."""
        rows = self.cameras()
        return [{"venue": venue.venue, "zones": venue.zones, "cameras": venue.cameras,
                 "cameras_online": online_count([r for r in rows if r["venue"] == venue.venue]),
                 "last_window_end": iso(venue.last_window_end)} for venue in self.store.venues()]

    def venue_zones(self) -> list[tuple[str, list[str]]]:
        return [(venue.venue, venue.zones) for venue in self.store.venues()]

    def knows(self, venue: str) -> bool:
        return any(row.venue == venue for row in self.store.venues())

    def mood(self, venue: str, zone: str | None = None, window_s: float | None = None,
             cameras: list[dict] | None = None, now: float | None = None) -> messages.Mood:
        """The mood served at /api/venues/{venue}/mood and published on the mood topic; ``cameras``: the venue's
        rows when the caller has them already."""
        now = time.time() if now is None else now
        window_s = self.mood_window_s if window_s is None else window_s
        rows = self.cameras(venue, now) if cameras is None else cameras
        current: Totals = self.store.totals(venue, now - window_s, now, zone)
        previous: Totals = self.store.totals(venue, now - 2 * window_s, now - window_s, zone)
        now_positivity, before = positivity(current.counts), positivity(previous.counts)
        return messages.Mood(
            venue=venue, zone=zone, ts=dt.datetime.fromtimestamp(now, dt.UTC), window_s=window_s,
            faces=current.faces, cameras_online=online_count(rows, zone), shares=shares(current.counts),
            dominant=dominant(current.counts), positivity=now_positivity,
            trend=None if now_positivity is None or before is None else round(now_positivity - before, 4),
            withheld_windows=current.withheld)

    def timeseries(self, venue: str, minutes: float, step_s: float, zone: str | None = None,
                   now: float | None = None) -> dict:
        now = time.time() if now is None else now
        points = []
        for bucket in self.store.series(venue, now - minutes * 60, now, step_s, zone):
            counts = bucket.counts
            points.append({"t": iso(bucket.t), "faces": sum(counts.values()), "counts": counts,
                           "shares": shares(counts), "positivity": positivity(counts)})
        return {"venue": venue, "zone": zone, "step_s": step_s, "points": points}


class Pushed:
    """What one consumer (the publisher, one live stream) last pushed per key: ``changed`` says whether a new
    value is worth pushing (a mood equal but for its time is not)."""

    def __init__(self):
        self._last: dict[Any, Any] = {}

    def changed(self, key: Any, value: Any) -> bool:
        last = self._last.get(key)
        same = value.same_as(last) if isinstance(value, messages.Mood) else value == last
        return not same

    def mark(self, key: Any, value: Any) -> None:
        self._last[key] = value

    def forget(self) -> None:
        self._last.clear()
