"""The HTTP side: JSON API, Server-Sent Events for the live dashboard, health, Prometheus metrics.

``create_app`` receives its dependencies (the views over the store, config, change feed, ingest statistics, the
stop event), so tests build it around a real store; the routes live in ``routes/``, one router per resource, and
read those from ``app.state``. Every bad query is a clear 4xx: ranges are bounded, ids are validated. Every request
first passes the Host check (``allowed_hosts.py``).
"""

from __future__ import annotations

import threading

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from emo7ion.aggregator.allowed_hosts import AllowedHosts, HostCheck
from emo7ion.aggregator.changes import Changes
from emo7ion.aggregator.config import AggregatorConfig
from emo7ion.aggregator.routes import cameras, dashboard, docs, health, stream, venues
from emo7ion.aggregator.routes.context import TOKEN_COOKIE
from emo7ion.aggregator.routes.venues import MAX_MINUTES, MAX_POINTS
from emo7ion.aggregator.views import Views
from emo7ion.core.service.version import version as emo7ion_version

__all__ = ["MAX_MINUTES", "MAX_POINTS", "TOKEN_COOKIE", "create_app"]

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
ROUTERS = (dashboard.router, venues.router, cameras.router, stream.router, health.router, docs.router)


def create_app(views: Views, config: AggregatorConfig, changes: Changes, ingest_stats=None,
               stop: threading.Event | None = None) -> FastAPI:
    """Routes and the live stream over ``views`` (the one read side; the API never reads the store itself).
    ``stop``: the process's stop event; live streams end on it before the server does."""
    app = FastAPI(title="Emo7ion aggregator", version=emo7ion_version(),
                  description="Venue mood from anonymous per-window emotion counts. No images, ever.",
                  docs_url=None, redoc_url=None, openapi_url=None)  # served by routes/docs.py, behind the token
    app.state.views, app.state.config, app.state.changes = views, config, changes
    app.state.ingest_stats = ingest_stats
    app.state.stopping = stop if stop is not None else threading.Event()
    app.state.streams = {"open": 0}

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if not request.url.path.startswith(API_DOCS):
            response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response

    app.add_middleware(HostCheck, hosts=AllowedHosts(config))  # added last: it runs first
    for router in ROUTERS:
        app.include_router(router)
    if dashboard.FILES.is_dir():
        app.mount("/static", StaticFiles(directory=str(dashboard.FILES)), name="static")
    return app
