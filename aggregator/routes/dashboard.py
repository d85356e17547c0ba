"""The dashboard: its page at / (open: it holds no data) and /api/meta, what it draws with."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from emo7ion.aggregator.routes.context import ConfigDep, guarded
from emo7ion.aggregator.schemas import MetaOut
from emo7ion.core import emotions
from emo7ion.core.service.version import version as emo7ion_version

FILES = resources.files("emo7ion.aggregator") / "dashboard"
"""The page, its script and its style sheet; ``api.create_app`` mounts them at /static."""

router = APIRouter()


@router.get("/api/meta", dependencies=guarded, response_model=MetaOut)
def meta(config: ConfigDep) -> dict:
    """What the dashboard draws with: the labels in canonical order and the mood window."""
    return {"labels": list(emotions.LABELS), "mood_window_s": config.mood_window_s, "version": emo7ion_version()}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> str:
    page = FILES / "index.html"
    if not page.is_file():
        return "<h1>Emo7ion aggregator</h1><p>The dashboard files are not installed; see /docs.</p>"
    return page.read_text()
