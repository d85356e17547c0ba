"""Camera state as an operator reads it: the retained status (online, or offline from the last will)
combined with how recently the camera was heard from."""

from __future__ import annotations

import datetime as dt
import time

from emo7ion.aggregator.store import Store
from emo7ion.core import messages


def _iso(ts: float | None) -> str | None:
    return None if ts is None else messages.utc_iso(dt.datetime.fromtimestamp(ts, dt.UTC))


def camera_list(store: Store, offline_after_s: float, venue: str | None = None, now: float | None = None) -> list:
    now = time.time() if now is None else now
    result = []
    for row in store.cameras(venue):
        stale = row["last_seen"] is None or now - row["last_seen"] > offline_after_s
        state = "offline" if row["state"] == "offline" else ("unknown" if stale else "online")
        result.append({**row, "state": state, "last_seen": _iso(row["last_seen"])})
    return result


def online_count(cameras: list[dict], zone: str | None = None) -> int:
    return sum(1 for c in cameras if c["state"] == "online" and (zone is None or c["zone"] == zone))
