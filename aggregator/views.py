"""The aggregator's one read side: what the HTTP routes, the live stream and the mood publisher show, read from
the store in one place. It owns the ISO times, the online rule (a camera is online while its status says so and
it was heard from within ``offline_after_s``) and "changed since the last push"."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from emo7ion.aggregator.mood import CameraTally, CameraWeighting, combine, dominant, positivity, shares
from emo7ion.aggregator.store import CameraTotals, PeopleWindow, Store, VenueRow, in_zone, people_in_zone
from emo7ion.aggregator.zones import Zones
from emo7ion.core import emotions, messages


def iso(ts: float | None) -> str | None:
    """A store time (epoch seconds) as the API and the payloads write it."""
    return None if ts is None else messages.utc_iso(dt.datetime.fromtimestamp(ts, dt.UTC))


def camera_state(stored_state: str | None, last_seen: float | None, offline_after_s: float, now: float) -> str:
    """offline (its status or last will said so), unknown (not heard from lately) or online."""
    if stored_state == "offline":
        return "offline"
    stale = last_seen is None or now - last_seen > offline_after_s
    return "unknown" if stale else "online"


def online_cameras(cameras: list[dict], zone: str | None = None) -> set[str]:
    return {c["camera"] for c in cameras if c["state"] == "online" and (zone is None or c["zone"] == zone)}


def tallies(totals: list[CameraTotals], people: list[PeopleWindow]) -> list[CameraTally]:
    """Each camera's tally over a period: its face counts, and its people's votes summed over its v2 windows."""
    votes: dict[str, dict[str, int]] = {}
    sent_people: set[str] = set()
    for window in people:
        sent_people.add(window.camera)
        if window.votes is not None:
            own = votes.setdefault(window.camera, dict.fromkeys(emotions.LABELS, 0))
            for label in emotions.LABELS:
                own[label] += window.votes[label]
    return [CameraTally(camera=row.camera, faces=row.counts, votes=votes.get(row.camera),
                        people=row.camera in sent_people) for row in totals]


def people_figures(windows: list[PeopleWindow], online: set[str]) -> dict:
    """The mood's people figures from the period's v2 windows (ordered by camera and start): in view now (each
    online camera's latest window's mean faces per frame, summed), seen (per camera, the people of its first
    window who were counted before it, plus everyone who entered since; summed over cameras, so a person seen
    by two cameras counts twice), votes, and dwell (the windows' dwell medians averaged, weighted by people who
    left: a typical time in view, not a true median)."""
    latest: dict[str, PeopleWindow] = {}
    seen = votes = ended = 0
    dwell_total = 0.0
    for window in windows:
        if window.camera not in latest:  # the camera's first window in the period
            seen += window.people - window.entered
        if window.camera not in latest or window.end > latest[window.camera].end:
            latest[window.camera] = window
        seen += window.entered
        votes += window.people if window.votes is not None else 0
        if window.dwell_s is not None and window.ended:
            dwell_total += window.dwell_s * window.ended
            ended += window.ended
    in_view = sum(window.in_view for camera, window in latest.items() if camera in online)
    return {"people_in_view": round(float(in_view), 1), "people_seen": seen, "votes": votes,
            "dwell_s": round(dwell_total / ended, 1) if ended else None}


class Views:
    """Venues, cameras with their state, the mood of a venue or zone over a window, and time series.
    ``weighting``: how much one camera may weigh in a mood (:mod:`mood`); ``zones``: the declared zones (a venue
    of the ``[venues]`` table lists only those, so only those get mood topics and Home Assistant entities)."""

    def __init__(self, store: Store, offline_after_s: float, mood_window_s: float,
                 weighting: CameraWeighting | None = None, zones: Zones | None = None):
        self.store, self.offline_after_s, self.mood_window_s = store, offline_after_s, mood_window_s
        self.weighting = weighting or CameraWeighting()
        self.zones = zones or Zones()

    def _zones(self, venue: VenueRow) -> list[str]:
        declared = self.zones.venue_zones(venue.venue)
        return venue.zones if declared is None else [zone for zone in venue.zones if zone in declared]

    def cameras(self, venue: str | None = None, now: float | None = None) -> list[dict]:
        now = time.time() if now is None else now
        # vars(), not dataclasses.asdict: the row's dicts are its own (fresh from JSON), and asdict's deep copy was 70%
        # of a mood tick over 25,000 cameras (issue 18 part 4)
        return [{**vars(row), "state": camera_state(row.state, row.last_seen, self.offline_after_s, now),
                 "last_seen": iso(row.last_seen)} for row in self.store.cameras(venue)]

    def venues(self) -> list[dict]:
        """Each venue with its zones, camera count, cameras online and last window's end."""
        rows = self.cameras()
        return [{"venue": venue.venue, "zones": self._zones(venue), "cameras": venue.cameras,
                 "cameras_online": len(online_cameras([r for r in rows if r["venue"] == venue.venue])),
                 "last_window_end": iso(venue.last_window_end)} for venue in self.store.venues()]

    def venue_zones(self) -> list[tuple[str, list[str]]]:
        return [(venue.venue, self._zones(venue)) for venue in self.store.venues()]

    def knows(self, venue: str) -> bool:
        return any(row.venue == venue for row in self.store.venues())

    def mood(self, venue: str, zone: str | None = None, window_s: float | None = None,
             cameras: list[dict] | None = None, now: float | None = None) -> messages.Mood:
        """The mood served at /api/venues/{venue}/mood and published on the mood topic; ``cameras``: the venue's
        rows when the caller has them already."""
        now = time.time() if now is None else now
        window_s = self.mood_window_s if window_s is None else window_s
        rows = self.cameras(venue, now) if cameras is None else cameras
        periods = self._periods([venue], window_s, now)
        return self._mood(venue, zone, window_s, rows, [period.get(venue, []) for period in periods], now)

    def moods(self, venues: list[tuple[str, list[str]]], now: float | None = None
              ) -> dict[tuple[str, str | None], messages.Mood]:
        """The mood of each of ``venues`` (venue, its zones) and of each of its zones, over the mood window, read in
        a few questions for them all (the mood publisher's tick), each equal to :meth:`mood`'s."""
        now = time.time() if now is None else now
        names = [venue for venue, _ in venues]
        rows: dict[str, list[dict]] = {venue: [] for venue in names}
        for row in self.cameras(None, now):
            if row["venue"] in rows:
                rows[row["venue"]].append(row)
        periods = self._periods(names, self.mood_window_s, now)
        return {(venue, zone): self._mood(venue, zone, self.mood_window_s, rows[venue],
                                          [period.get(venue, []) for period in periods], now)
                for venue, zones in venues for zone in [None, *zones]}

    def _periods(self, venues: list[str], window_s: float, now: float) -> list[dict]:
        """The venues' camera totals and people windows of the window ending now and of the one before it."""
        return [self.store.camera_totals_by_venue(venues, now - window_s, now),
                self.store.people_windows_by_venue(venues, now - window_s, now),
                self.store.camera_totals_by_venue(venues, now - 2 * window_s, now - window_s),
                self.store.people_windows_by_venue(venues, now - 2 * window_s, now - window_s)]

    def _mood(self, venue: str, zone: str | None, window_s: float, rows: list[dict], periods: list[list],
              now: float) -> messages.Mood:
        totals, people_rows, previous_totals, previous_people_rows = periods
        current, previous = in_zone(totals, zone), in_zone(previous_totals, zone)
        people, previous_people = people_in_zone(people_rows, zone), people_in_zone(previous_people_rows, zone)
        counts = combine(tallies(current, people), self.weighting)
        before = positivity(combine(tallies(previous, previous_people), self.weighting))
        now_positivity = positivity(counts)
        online = online_cameras(rows, zone)
        return messages.Mood(
            venue=venue, zone=zone, ts=dt.datetime.fromtimestamp(now, dt.UTC), window_s=window_s,
            faces=sum(sum(row.counts.values()) for row in current), cameras_online=len(online),
            shares=shares(counts), dominant=dominant(counts), positivity=now_positivity,
            trend=None if now_positivity is None or before is None else round(now_positivity - before, 4),
            withheld_windows=sum(row.withheld for row in current),
            **(people_figures(people, online) if people else {}))

    def timeseries(self, venue: str, minutes: float, step_s: float, zone: str | None = None,
                   now: float | None = None) -> dict:
        """Per time step: the face-frame counts summed, and the shares and positivity of the cameras combined as
        in the mood (people's votes where cameras send them, each camera's weight bounded)."""
        now = time.time() if now is None else now
        by_time: dict[float, list] = {}
        for bucket in self.store.series(venue, now - minutes * 60, now, step_s, zone):
            by_time.setdefault(bucket.t, []).append(bucket)
        points = []
        for t, buckets in by_time.items():
            counts = {label: sum(b.counts[label] for b in buckets) for label in emotions.LABELS}
            combined = combine([CameraTally(camera=b.camera, faces=b.counts, votes=b.votes, people=b.people)
                                for b in buckets], self.weighting)
            points.append({"t": iso(t), "faces": sum(counts.values()), "counts": counts,
                           "shares": shares(combined), "positivity": positivity(combined)})
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
