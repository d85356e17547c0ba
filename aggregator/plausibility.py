"""Whether a schema-valid message is believable before it may count: dated no further ahead than the
clock skew allows and no older than the retention, and a window's frames and faces within what its length
allows. Overlap with windows already stored is judged by the store, which holds them."""

from __future__ import annotations

import math

from emo7ion.aggregator.config import AggregatorConfig
from emo7ion.core import messages

REASONS = ("future", "stale", "frames", "faces", "overlap")
"""Rejection reasons of this judgement (and the store's overlap), as counted in /metrics."""


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
    if reason == "frames":
        return f"{item.frames} frames exceed {config.max_fps:g} fps over the window"
    if reason == "faces":
        return f"{item.faces} faces exceed {config.max_faces_per_frame} per frame over {item.frames} frames"
    return "overlaps a window already stored for this camera"
