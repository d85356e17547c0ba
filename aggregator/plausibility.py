"""Whether a schema-valid message is believable before it may count: dated no further ahead than the
clock skew allows and no older than the retention, a window no shorter than ``min_window_s`` (a real agent's
shortest is 1 s) and its frames and faces within what its length allows. Overlap with windows already stored, the
camera's zone and its quota (aggregator/zones.py, quota.py) are judged by the store's write, which holds them."""

from __future__ import annotations

import math

from emo7ion.aggregator.config import AggregatorConfig
from emo7ion.core import messages

REASONS = ("future", "stale", "short", "frames", "faces", "overlap", "zone", "rate", "day_cap")
"""Rejection reasons of this judgement (and the store's: overlap, zone, rate, day_cap), as counted in /metrics."""


def judge(item: messages.Window | messages.Status | messages.Health, now: float,
          config: AggregatorConfig) -> str | None:
    """The reason ``item`` is refused, or None when it may be stored."""
    if not config.check_windows:
        return None
    moment = (item.end if isinstance(item, messages.Window) else item.ts).timestamp()
    if moment > now + config.max_clock_skew_s:
        return "future"
    if moment < now - config.retention_days * 86400:
        return "stale"
    if isinstance(item, messages.Window):
        length = (item.end - item.start).total_seconds()
        if length < config.min_window_s:
            return "short"
        if item.frames > math.ceil(length * config.max_fps):
            return "frames"
        if item.faces > item.frames * config.max_faces_per_frame:
            return "faces"
    return None


def explain(reason: str, item: messages.Window | messages.Status | messages.Health,
            config: AggregatorConfig) -> str:
    """A log line's worth on why ``item`` was refused."""
    if reason == "future":
        return f"dated more than {config.max_clock_skew_s:g} s ahead of this clock"
    if reason == "stale":
        return f"older than the retention ({config.retention_days:g} days)"
    if reason == "short":
        return (f"{(item.end - item.start).total_seconds():g} s is shorter than any real window "
                f"(min_window_s {config.min_window_s:g} s)")
    if reason == "frames":
        return f"{item.frames} frames exceed {config.max_fps:g} fps over the window"
    if reason == "faces":
        return f"{item.faces} faces exceed {config.max_faces_per_frame} per frame over {item.frames} frames"
    if reason == "zone":
        return f"zone {item.zone!r} is not this camera's (declared in [venues], or the first it reported)"
    if reason == "rate":
        return (f"the camera stored more window time than has passed, beyond a backlog of "
                f"{config.camera_backlog_s:g} s")
    if reason == "day_cap":
        return f"the camera stored {config.max_camera_windows_per_day} windows today (max_camera_windows_per_day)"
    return "shares time with a window already stored for this camera"
