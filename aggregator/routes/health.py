"""/healthz for load balancers and systemd (open: it says only whether the service works) and /metrics for
Prometheus (behind the token or the metrics token: it names venues and cameras)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import PlainTextResponse

from emo7ion.aggregator.metrics import render_metrics
from emo7ion.aggregator.routes.context import ViewsDep, authorise_metrics
from emo7ion.core.service.version import version as emo7ion_version

router = APIRouter()


@router.get("/healthz")
def healthz(request: Request, views: ViewsDep) -> dict:
    ingest_stats = request.app.state.ingest_stats
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


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(authorise_metrics)])
def metrics(request: Request, views: ViewsDep) -> str:
    text = render_metrics(request.app.state.ingest_stats, views.cameras())
    guard = getattr(request.app.state, "http_guard", None)  # set by the service once its server runs
    return text if guard is None else text.rstrip("\n") + "\n" + guard.metrics_text()
