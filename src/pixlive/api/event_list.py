"""`GET /events` with `Accept: application/json`: the merchant's events of the last 30 days
as a list, newest first, filtered by type, charge and time, paginated by a cursor (as
Stripe's events API). The same route without it is the SSE stream (api/streams.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from pixlive.api.errors import ApiError
from pixlive.api.params import RowId
from pixlive.domain.charge import iso
from pixlive.runtime import Runtime
from pixlive.services.webhook_ports import OutboxEvent, WebhookStore

KEPT = timedelta(days=30)


class EventQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: list[str] | None = Field(None, max_length=20)
    payment_id: str | None = Field(None, max_length=25)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    limit: int = Field(50, ge=1, le=200)
    cursor: RowId | None = Field(None, ge=1)  # past 2**63 - 1 the INTEGER overflows


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/event-stream" not in accept


def _query(request: Request) -> EventQuery:
    params = request.query_params
    # `after` belongs to the stream (where to resume from); ignored here.
    raw: dict[str, object] = {k: params.get(k) for k in params if k not in ("type", "after")}
    if "type" in params:
        raw["type"] = [t for value in params.getlist("type") for t in value.split(",") if t]
    try:
        return EventQuery.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "query"
        raise ApiError(422, "invalid_query", f"{where}: {first.get('msg')}") from exc


def event_json(event: OutboxEvent) -> dict[str, object]:
    return {
        "id": event.id,
        "type": event.type,
        "payment_id": event.payment_id,
        "status": event.status,
        "at": iso(event.at),
        "data": event.data,
    }


async def event_list(request: Request, runtime: Runtime) -> Response:
    query = _query(request)
    oldest = datetime.now(UTC) - KEPT
    since = max(query.since, oldest) if query.since else oldest

    async def job(store: WebhookStore) -> list[OutboxEvent]:
        return await store.events_page(
            types=query.type,
            payment_id=query.payment_id,
            since=since,
            until=query.until,
            before=query.cursor,
            limit=query.limit + 1,
        )

    found = await runtime.webhooks.tx.read(job)
    page = found[: query.limit]
    more = len(found) > query.limit
    return JSONResponse(
        {
            "data": [event_json(event) for event in page],
            "next_cursor": str(page[-1].id) if more and page else None,
        },
        headers={"Cache-Control": "no-store"},
    )
