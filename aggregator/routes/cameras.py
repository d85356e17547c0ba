"""/api/cameras: every camera (or one venue's) with its state, zone, health and sequence accounting."""

from __future__ import annotations

from fastapi import APIRouter

from emo7ion.aggregator.routes.context import ViewsDep, guarded, venue_id
from emo7ion.aggregator.schemas import CameraOut

router = APIRouter(prefix="/api/cameras", dependencies=guarded)


@router.get("", response_model=list[CameraOut])
def list_cameras(views: ViewsDep, venue: str | None = None) -> list[dict]:
    return views.cameras(venue_id(venue) if venue else None)
