"""Response models of the HTTP API: what ``/docs`` shows and what each route promises. The fields are the
documents :mod:`views` builds (the mood one is ``messages.Mood.document()``, the v1 payload without v/type)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class MetaOut(BaseModel):
    labels: list[str]
    mood_window_s: float
    version: str


class VenueOut(BaseModel):
    venue: str
    zones: list[str]
    cameras: int
    cameras_online: int
    last_window_end: str | None


class MoodOut(BaseModel):
    venue: str
    zone: str | None
    ts: str
    window_s: float
    faces: int
    cameras_online: int
    shares: dict[str, float] | None
    dominant: str | None
    positivity: float | None
    trend: float | None
    withheld_windows: int


class PointOut(BaseModel):
    t: str
    faces: int
    counts: dict[str, int]
    shares: dict[str, float] | None
    positivity: float | None


class TimeseriesOut(BaseModel):
    venue: str
    zone: str | None
    step_s: float
    points: list[PointOut]


class CameraOut(BaseModel):
    venue: str
    camera: str
    zone: str | None
    state: str
    last_seen: str | None
    agent: str | None
    model: dict[str, str] | None
    health: dict[str, Any] | None
    missing: int
