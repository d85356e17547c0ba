"""What every router shares: the app's state as typed dependencies, the bearer-token checks and id validation."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, HTTPException, Request

from emo7ion.aggregator.changes import Changes
from emo7ion.aggregator.config import AggregatorConfig
from emo7ion.aggregator.views import Views
from emo7ion.core import messages

TOKEN_COOKIE = "emo7ion_token"
"""The dashboard's live stream (an EventSource cannot send headers) authenticates with this cookie."""


def _views(request: Request) -> Views:
    return request.app.state.views


def _config(request: Request) -> AggregatorConfig:
    return request.app.state.config


def _changes(request: Request) -> Changes:
    return request.app.state.changes


ViewsDep = Annotated[Views, Depends(_views)]
ConfigDep = Annotated[AggregatorConfig, Depends(_config)]
ChangesDep = Annotated[Changes, Depends(_changes)]


def _given_token(request: Request, cookie: bool = True) -> str:
    """From an ``Authorization: Bearer`` header (or the dashboard's cookie); never from the query string, which
    ends up in proxy and server logs."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:]
    return unquote(request.cookies.get(TOKEN_COOKIE, "")) if cookie else ""


def _matches(given: str, token: str) -> bool:
    return bool(token) and secrets.compare_digest(given.encode(errors="replace"), token.encode())


def _refuse() -> HTTPException:
    return HTTPException(status_code=401, detail="a valid bearer token is required",
                         headers={"WWW-Authenticate": "Bearer"})


def authorise(request: Request, config: ConfigDep) -> None:
    """The API, its OpenAPI pages and the live stream: the token, when one is set."""
    if config.token and not _matches(_given_token(request), config.token):
        raise _refuse()


def authorise_metrics(request: Request, config: ConfigDep) -> None:
    """/metrics names venues and cameras: the token or the metrics token (Prometheus' bearer credentials), when
    either is set."""
    if not (config.token or config.metrics_token):
        return
    given = _given_token(request, cookie=False)
    if not (_matches(given, config.token) | _matches(given, config.metrics_token)):  # both compared: flat timing
        raise _refuse()


guarded = [Depends(authorise)]


def venue_id(venue: str) -> str:
    try:
        return messages.check_id(venue, "venue")
    except messages.MessageError as error:
        raise HTTPException(status_code=422, detail=str(error)) from None


def zone_id(zone: str | None) -> str | None:
    if zone in (None, ""):
        return None
    try:
        return messages.check_id(zone, "zone")
    except messages.MessageError as error:
        raise HTTPException(status_code=422, detail=str(error)) from None
