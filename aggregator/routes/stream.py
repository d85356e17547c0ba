"""/api/stream: the live dashboard's Server-Sent Events, at most ``max_streams`` at once."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from emo7ion.aggregator.routes.context import ChangesDep, ConfigDep, ViewsDep, guarded, venue_id
from emo7ion.aggregator.views import Pushed

router = APIRouter(prefix="/api/stream", dependencies=guarded)


@router.get("")
async def stream(request: Request, views: ViewsDep, config: ConfigDep, changes: ChangesDep,
                 venue: str) -> StreamingResponse:
    venue = venue_id(venue)
    streams = request.app.state.streams  # being served; the event loop is one thread: no lock needed
    if streams["open"] >= config.max_streams:
        raise HTTPException(status_code=503, detail=f"{config.max_streams} live streams are open already "
                            f"(max_streams); try again later", headers={"Retry-After": "10"})
    streams["open"] += 1

    async def events():
        try:
            async for event in mood_events(request, views, changes, venue):
                yield event
        finally:
            streams["open"] -= 1

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def mood_events(request: Request, views, changes, venue: str):
    """Mood and camera rows whenever the venue changed, and a ping every 15 s; ends with the process's stop
    event, before the server does."""
    last_version, pushed, idle = None, Pushed(), 0.0
    stopping = request.app.state.stopping
    while not stopping.is_set() and not await request.is_disconnected():
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
