"""Venue mood over a sliding window: the share of each emotion weighted by faces, the dominant one, a
positivity index (positive minus negative share, -1..1) and its trend against the previous window."""

from __future__ import annotations

import datetime as dt
import time

from emo7ion.aggregator.store import Store, Totals
from emo7ion.core import emotions, messages


def shares(counts: dict[str, int]) -> dict[str, float] | None:
    total = sum(counts.values())
    if not total:
        return None
    return {label: round(counts[label] / total, 4) for label in emotions.LABELS}


def positivity(counts: dict[str, int]) -> float | None:
    total = sum(counts.values())
    if not total:
        return None
    positive = sum(counts[label] for label in emotions.POSITIVE)
    negative = sum(counts[label] for label in emotions.NEGATIVE)
    return round((positive - negative) / total, 4)


def dominant(counts: dict[str, int]) -> str | None:
    if not sum(counts.values()):
        return None
    return max(emotions.LABELS, key=lambda label: (counts[label], -emotions.LABELS.index(label)))


def venue_mood(store: Store, venue: str, window_s: float, cameras_online: int, zone: str | None = None,
               now: float | None = None) -> messages.Mood:
    """The mood served at /api/venues/{venue}/mood and published on the mood topic."""
    now = time.time() if now is None else now
    current: Totals = store.totals(venue, now - window_s, now, zone)
    previous: Totals = store.totals(venue, now - 2 * window_s, now - window_s, zone)
    now_positivity, before = positivity(current.counts), positivity(previous.counts)
    return messages.Mood(
        venue=venue, zone=zone, ts=dt.datetime.fromtimestamp(now, dt.UTC), window_s=window_s, faces=current.faces,
        cameras_online=cameras_online, shares=shares(current.counts), dominant=dominant(current.counts),
        positivity=now_positivity,
        trend=None if now_positivity is None or before is None else round(now_positivity - before, 4),
        withheld_windows=current.withheld)


def timeseries(store: Store, venue: str, minutes: float, step_s: float, zone: str | None = None,
               now: float | None = None) -> dict:
    now = time.time() if now is None else now
    points = []
    for bucket in store.series(venue, now - minutes * 60, now, step_s, zone):
        counts = bucket["counts"]
        points.append({"t": messages.utc_iso(dt.datetime.fromtimestamp(bucket["t"], dt.UTC)),
                       "faces": sum(counts.values()), "counts": counts, "shares": shares(counts),
                       "positivity": positivity(counts)})
    return {"venue": venue, "zone": zone, "step_s": step_s, "points": points}
