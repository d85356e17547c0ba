"""The HTTP side: JSON API, Server-Sent Events for the live dashboard, health, Prometheus metrics.

``create_app`` receives its dependencies (the views over the store, config, change feed, ingest statistics, the
stop event), so tests build it around a real store. Every bad query is a clear 4xx: ranges are bounded, ids are
validated.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from importlib import resources
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from emo7ion.aggregator.changes import Changes
from emo7ion.aggregator.config import AggregatorConfig
from emo7ion.aggregator.metrics import render_metrics
from emo7ion.aggregator.schemas import CameraOut, MetaOut, MoodOut, TimeseriesOut, VenueOut
from emo7ion.aggregator.views import Pushed, Views
from emo7ion.core import emotions, messages
from emo7ion.core.service.version import version as emo7ion_version

MAX_MINUTES = 7 * 24 * 60
MAX_POINTS = 5000
TOKEN_COOKIE = "emo7ion_token"
"""The dashboard's live stream (an EventSource cannot send headers) authenticates with this cookie."""

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")
API_DOCS = ("/docs", "/redoc")
"""FastAPI's documentation pages load their scripts from a CDN and inline: they keep the other headers only."""


def _venue_id(venue: str) -> str:
    try:
        return messages.check_id(venue, "venue")
    except messages.MessageError as error:
        raise HTTPException(status_code=422, detail=str(error)) from None


def _zone_id(zone: str | None) -> str | None:
    if zone in (None, ""):
        return None
    try:
        return messages.check_id(zone, "zone")
    except messages.MessageError as error:
        raise HTTPException(status_code=422, detail=str(error)) from None


def create_app(views: Views, config: AggregatorConfig, changes: Changes, ingest_stats=None,
               stop: threading.Event | None = None) -> FastAPI:
    """Routes and the live stream over ``views`` (the one read side; the API never reads the store itself).
    ``stop``: the process's stop event; live streams end on it before the server does."""
    app = FastAPI(title="Emo7ion aggregator", version=emo7ion_version(),
                  description="Venue mood from anonymous per-window emotion counts. No images, ever.")
    app.state.stopping = stop if stop is not None else threading.Event()

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if not request.url.path.startswith(API_DOCS):
            response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response

    def authorise(request: Request) -> None:
        """The token from an ``Authorization: Bearer`` header or the dashboard's cookie; never from the query
        string, which ends up in proxy and server logs."""
        if not config.token:
            return
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else unquote(request.cookies.get(TOKEN_COOKIE, ""))
        if not secrets.compare_digest(given.encode(errors="replace"), config.token.encode()):
            raise HTTPException(status_code=401, detail="a valid bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorise)]


    def venue_known(venue: str) -> None:
        if not views.knows(venue):
            raise HTTPException(status_code=404, detail=f"no venue {venue!r} has reported yet")

    @app.get("/api/meta", dependencies=guarded, response_model=MetaOut)
    def meta() -> dict:
        """What the dashboard draws with: the labels in canonical order and the mood window."""
        return {"labels": list(emotions.LABELS), "mood_window_s": config.mood_window_s, "version": emo7ion_version()}

    @app.get("/api/venues", dependencies=guarded, response_model=list[VenueOut])
    def list_venues() -> list[dict]:
        return views.venues()

    @app.get("/api/venues/{venue}/mood", dependencies=guarded, response_model=MoodOut)
    def venue_mood(venue: str, zone: str | None = None,
                   minutes: Annotated[float | None, Query(gt=0, le=MAX_MINUTES)] = None) -> dict:
        venue = _venue_id(venue)
        venue_known(venue)
        return views.mood(venue, _zone_id(zone), minutes * 60 if minutes else None).document()

    @app.get("/api/venues/{venue}/timeseries", dependencies=guarded, response_model=TimeseriesOut)
    def venue_timeseries(venue: str, zone: str | None = None,
                         minutes: Annotated[float, Query(gt=0, le=MAX_MINUTES)] = 60,
                         step: Annotated[float, Query(ge=1, le=86400)] = 60) -> dict:
        venue = _venue_id(venue)
        if minutes * 60 / step > MAX_POINTS:
            raise HTTPException(status_code=422, detail=f"minutes/step asks for more than {MAX_POINTS} points")
        venue_known(venue)
        return views.timeseries(venue, minutes, step, _zone_id(zone))

    @app.get("/api/cameras", dependencies=guarded, response_model=list[CameraOut])
    def list_cameras(venue: str | None = None) -> list[dict]:
        return views.cameras(_venue_id(venue) if venue else None)

    streams = {"open": 0}  # live streams being served (the event loop is one thread: no lock needed)

    @app.get("/api/stream", dependencies=guarded)
    async def stream(request: Request, venue: str) -> StreamingResponse:
        venue = _venue_id(venue)
        if streams["open"] >= config.max_streams:
            raise HTTPException(status_code=503, detail=f"{config.max_streams} live streams are open already "
                                f"(max_streams); try again later", headers={"Retry-After": "10"})
        streams["open"] += 1

        async def events():
            try:
                async for event in mood_events(request, venue):
                    yield event
            finally:
                streams["open"] -= 1

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def mood_events(request: Request, venue: str):
        """Mood and camera rows whenever the venue changed, and a ping every 15 s."""
        last_version, pushed, idle = None, Pushed(), 0.0
        while not app.state.stopping.is_set() and not await request.is_disconnected():
            version = changes.version(venue)
            if version != last_version:
                last_version = version
                current = await asyncio.to_thread(views.mood, venue)
                if pushed.changed("mood", current):
                    pushed.mark("mood", current)
                    yield f"event: mood\ndata: {json.dumps(current.document())}\n\n"
                rows = await asyncio.to_thread(views.cameras, venue)
                if pushed.changed("cameras", rows):
                    pushed.mark("cameras", rows)
                    yield f"event: cameras\ndata: {json.dumps(rows)}\n\n"
                idle = 0.0
            await asyncio.sleep(1.0)
            idle += 1.0
            if idle >= 15:
                idle = 0.0
                last_version = None  # also refreshes camera staleness and the sliding window
                yield ": ping\n\n"

    @app.get("/healthz")
    def healthz() -> dict:
        try:
            views.venue_zones()
            database = "ok"
        except Exception as error:  # report, don't raise: this is the health check
            database = f"error: {error}"
        connected = bool(ingest_stats.connected) if ingest_stats is not None else None
        if ingest_stats is not None and not ingest_stats.store_ok:
            database = "error: the last write failed (disk full, database away?); retrying"
        healthy = database == "ok" and connected is not False
        if not healthy:
            raise HTTPException(status_code=503, detail={"database": database, "broker_connected": connected})
        return {"status": "ok", "database": database, "broker_connected": connected, "version": emo7ion_version()}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> str:
        return render_metrics(ingest_stats, views.cameras())

    dashboard = resources.files("emo7ion.aggregator") / "dashboard"

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        page = dashboard / "index.html"
        if not page.is_file():
            return "<h1>Emo7ion aggregator</h1><p>The dashboard files are not installed; see /docs.</p>"
        return page.read_text()

    if dashboard.is_dir():
        app.mount("/static", StaticFiles(directory=str(dashboard)), name="static")
    return app
