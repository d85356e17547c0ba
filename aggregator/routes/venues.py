"""/api/venues: the venues that reported, and each one's mood and time series."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from emo7ion.aggregator.routes.context import ViewsDep, guarded, venue_id, zone_id
from emo7ion.aggregator.schemas import MoodOut, TimeseriesOut, VenueOut
from emo7ion.aggregator.views import Views

MAX_MINUTES = 7 * 24 * 60
MAX_POINTS = 5000

router = APIRouter(prefix="/api/venues", dependencies=guarded)


def _known(views: Views, venue: str) -> None:
    if not views.knows(venue):
        raise HTTPException(status_code=404, detail=f"no venue {venue!r} has reported yet")


@router.get("", response_model=list[VenueOut])
def list_venues(views: ViewsDep) -> list[dict]:
    return views.venues()


@router.get("/{venue}/mood", response_model=MoodOut)
def venue_mood(views: ViewsDep, venue: str, zone: str | None = None,
               minutes: Annotated[float | None, Query(gt=0, le=MAX_MINUTES)] = None) -> dict:
    venue = venue_id(venue)
    _known(views, venue)
    return views.mood(venue, zone_id(zone), minutes * 60 if minutes else None).document()


@router.get("/{venue}/timeseries", response_model=TimeseriesOut)
def venue_timeseries(views: ViewsDep, venue: str, zone: str | None = None,
                     minutes: Annotated[float, Query(gt=0, le=MAX_MINUTES)] = 60,
                     step: Annotated[float, Query(ge=1, le=86400)] = 60) -> dict:
    venue = venue_id(venue)
    if minutes * 60 / step > MAX_POINTS:
        raise HTTPException(status_code=422, detail=f"minutes/step asks for more than {MAX_POINTS} points")
    _known(views, venue)
    return views.timeseries(venue, minutes, step, zone_id(zone))
