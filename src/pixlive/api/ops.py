"""Health, readiness and metrics, for the operator and the load balancer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pixlive import metrics
from pixlive.api.dependencies import RuntimeDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database and the bus are reachable")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    database = await runtime.db.ping()
    bus = await runtime.hub.bus.ping()
    ready = database and bus
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "database": database, "bus": bus},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", response_class=Response, summary="Prometheus metrics")
async def prometheus(runtime: RuntimeDep) -> Response:
    metrics.bus_reconnects.set(runtime.hub.bus.reconnects)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
