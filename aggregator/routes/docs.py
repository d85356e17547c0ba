"""/openapi.json, /docs and /redoc, behind the token when one is set (they map the whole API). FastAPI's own
pages are turned off in ``create_app``; these serve the same, guarded. A browser does not send the bearer header:
with a token set, read the schema with ``curl -H "Authorization: Bearer ..." .../openapi.json``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from emo7ion.aggregator.routes.context import guarded

router = APIRouter(dependencies=guarded, include_in_schema=False)


@router.get("/openapi.json")
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title} - Swagger UI")


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url="/openapi.json", title=f"{request.app.title} - ReDoc")
