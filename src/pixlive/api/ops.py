"""Health, readiness and metrics, for the operator and the load balancer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from pixlive import metrics
from pixlive.adapters.errors import DatabaseUnavailable
from pixlive.api.dependencies import RuntimeDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database can commit and the bus is reachable",
    responses={503: {"description": "Not ready: the error names what is down"}},
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    problems = []
    database = True
    try:
        await runtime.db.check_commit()
    except DatabaseUnavailable as exc:
        database = False
        problems.append(f"the database cannot commit ({exc})")
    bus = await runtime.hub.bus.ping()
    if not bus:
        problems.append("the bus is unreachable")
    if problems:
        return JSONResponse(
            {"error": {"code": "not_ready", "message": "not ready: " + "; ".join(problems)}},
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": database, "bus": bus})


@router.get("/metrics", response_class=Response, summary="Prometheus metrics")
async def prometheus(runtime: RuntimeDep) -> Response:
    metrics.bus_reconnects.set(runtime.hub.bus.reconnects)
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
