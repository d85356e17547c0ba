"""Response models of the HTTP API: what ``/docs`` shows and what each route promises. The fields are the
documents :mod:`views` builds. The mood one is derived from ``messages.Mood`` (its ``document()`` is the v1 payload
without v/type), so the API and the wire cannot drift apart."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pydantic import BaseModel, Field, create_model

from emo7ion.core import messages


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


def _model_of(name: str, cls: type, as_served: dict[str, Any], descriptions: dict[str, str]) -> type[BaseModel]:
    """A response model with the fields of dataclass ``cls``, in its order; ``as_served`` retypes the fields its
    JSON document writes differently (a datetime as ISO text). A field with a default (the mood's people figures,
    absent from a v1 venue's payload) is served as null when the document leaves it out. ``descriptions``: what
    /docs says a field counts."""
    hints = typing.get_type_hints(cls)
    return create_model(name, **{f.name: (as_served.get(f.name, hints[f.name]), Field(
        ... if f.default is dataclasses.MISSING else f.default, description=descriptions.get(f.name)))
        for f in dataclasses.fields(cls)})


MoodOut = _model_of("MoodOut", messages.Mood, {"ts": str}, {
    "faces": "face detections in the period: every face in every analysed frame (one person seen in ten frames "
             "counts ten times); not a head count",
    "shares": "each emotion's share: of the people's votes where cameras send people, else of face detections; "
              "each camera's weight bounded (docs/architecture.md)",
    "people_in_view": "null without people data. Each online camera's mean faces per frame in its latest window, "
                      "summed over the cameras: a person seen by two cameras counts twice",
    "people_seen": "null without people data. People seen by the cameras in the period (per camera: those in view "
                   "when it began plus those who entered since), summed: a person seen by two cameras counts twice",
    "votes": "null without people data. The people's votes the shares were made of, one per person per window",
    "dwell_s": "null without people data or when nobody left. Seconds in view of the people who left: the windows' "
               "medians averaged, weighted by how many left (a typical stay, not an exact median)",
})


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
