"""Merchant API of outgoing webhooks: endpoints, their deliveries, redelivery and replay."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from pixlive.api import params
from pixlive.api.dependencies import ApiKeyDep, RuntimeDep
from pixlive.api.errors import ApiError
from pixlive.api.models import ErrorOut
from pixlive.domain.charge import iso
from pixlive.domain.errors import DomainError
from pixlive.domain.webhook_endpoint import Endpoint
from pixlive.runtime import Runtime
from pixlive.services import webhook_endpoints as service
from pixlive.services.webhook_ports import Attempt, Delivery, Job, WebhookStore

router = APIRouter(tags=["webhooks"])
T = TypeVar("T")

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No valid API key"},
    404: {"model": ErrorOut, "description": "No such endpoint or event"},
    422: {"model": ErrorOut, "description": "Invalid request"},
}


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2048)
    events: list[str] | None = Field(None, max_length=50)
    description: str | None = Field(None, max_length=500)


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, max_length=2048)
    events: list[str] | None = Field(None, max_length=50)
    enabled: bool | None = None
    description: str | None = Field(None, max_length=500)


class EndpointOut(BaseModel):
    id: str
    url: str
    description: str | None
    events: list[str] | None
    enabled: bool
    disabled_reason: str | None
    created_at: str
    updated_at: str
    # Set only by creation and rotation: the secret is shown once.
    secret: str | None = None

    @classmethod
    def of(cls, endpoint: Endpoint, *, secret: bool = False) -> EndpointOut:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description,
            events=list(endpoint.events) if endpoint.events is not None else None,
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            created_at=iso(endpoint.created_at),
            updated_at=iso(endpoint.updated_at),
            secret=endpoint.secret if secret else None,
        )


class EndpointList(BaseModel):
    data: list[EndpointOut]


class AttemptOut(BaseModel):
    number: int
    at: str
    status_code: int | None
    error: str | None
    latency_ms: float
    response: str

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptOut:
        return cls(
            number=attempt.number,
            at=iso(attempt.at),
            status_code=attempt.status_code,
            error=attempt.error,
            latency_ms=round(attempt.latency_ms, 3),
            response=attempt.response,
        )


class DeliveryOut(BaseModel):
    id: int
    webhook_id: str
    event_id: int
    event_type: str
    kind: str
    status: str
    attempts: list[AttemptOut]
    next_attempt_at: str | None
    created_at: str

    @classmethod
    def of(cls, delivery: Delivery, attempts: list[Attempt]) -> DeliveryOut:
        return cls(
            id=delivery.id,
            webhook_id=delivery.msg_id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            kind=delivery.kind,
            status=delivery.status.value,
            attempts=[AttemptOut.of(a) for a in attempts],
            next_attempt_at=iso(delivery.next_attempt_at) if delivery.next_attempt_at else None,
            created_at=iso(delivery.created_at),
        )


class DeliveryList(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: AwareDatetime
    until: AwareDatetime | None = None


class Queued(BaseModel):
    queued: int


def _now() -> datetime:
    return datetime.now(UTC)


async def _write(runtime: Runtime, job: Job[T]) -> T:
    try:
        return await runtime.webhooks.tx.write(job)
    except DomainError as exc:
        raise _translated(exc) from exc


async def _read(runtime: Runtime, job: Job[T]) -> T:
    try:
        return await runtime.webhooks.tx.read(job)
    except DomainError as exc:
        raise _translated(exc) from exc


def _translated(exc: DomainError) -> ApiError:
    if isinstance(exc, service.EndpointNotFound | service.EventNotFound):
        return ApiError(404, "not_found", str(exc))
    return ApiError(422, exc.code, str(exc))


@router.post(
    "/webhook-endpoints",
    status_code=201,
    response_model=EndpointOut,
    responses=ERRORS,
    summary="Register a webhook endpoint (its secret is in this answer only)",
)
async def create(body: EndpointCreate, runtime: RuntimeDep, api_key: ApiKeyDep) -> EndpointOut:
    policy = runtime.webhooks.policy

    async def job(store: WebhookStore) -> Endpoint:
        return await service.create_endpoint(
            store,
            url=body.url,
            events=body.events,
            description=body.description,
            policy=policy,
            now=_now(),
        )

    return EndpointOut.of(await _write(runtime, job), secret=True)


@router.get("/webhook-endpoints", response_model=EndpointList, responses=ERRORS)
async def list_endpoints(runtime: RuntimeDep, api_key: ApiKeyDep) -> EndpointList:
    endpoints = await _read(runtime, lambda store: store.list_endpoints())
    return EndpointList(data=[EndpointOut.of(e) for e in endpoints])


@router.get("/webhook-endpoints/{endpoint_id}", response_model=EndpointOut, responses=ERRORS)
async def get_endpoint(endpoint_id: str, runtime: RuntimeDep, api_key: ApiKeyDep) -> EndpointOut:
    return EndpointOut.of(
        await _read(runtime, lambda store: service.get_endpoint(store, endpoint_id))
    )


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=EndpointOut, responses=ERRORS)
async def update_endpoint(
    endpoint_id: str, body: EndpointUpdate, runtime: RuntimeDep, api_key: ApiKeyDep
) -> EndpointOut:
    policy = runtime.webhooks.policy
    clear_events = "events" in body.model_fields_set and body.events is None

    async def job(store: WebhookStore) -> Endpoint:
        return await service.update_endpoint(
            store,
            endpoint_id,
            url=body.url,
            events=body.events,
            clear_events=clear_events,
            enabled=body.enabled,
            description=body.description,
            policy=policy,
            now=_now(),
        )

    return EndpointOut.of(await _write(runtime, job))


@router.delete(
    "/webhook-endpoints/{endpoint_id}", status_code=204, responses=ERRORS, response_model=None
)
async def delete_endpoint(endpoint_id: str, runtime: RuntimeDep, api_key: ApiKeyDep) -> Response:
    await _write(runtime, lambda store: service.delete_endpoint(store, endpoint_id))
    return Response(status_code=204)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    response_model=EndpointOut,
    responses=ERRORS,
    summary="A new secret; the old one keeps signing beside it for 24 hours",
)
async def rotate_secret(endpoint_id: str, runtime: RuntimeDep, api_key: ApiKeyDep) -> EndpointOut:
    endpoint = await _write(
        runtime, lambda store: service.rotate_secret(store, endpoint_id, _now())
    )
    return EndpointOut.of(endpoint, secret=True)


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries", response_model=DeliveryList, responses=ERRORS
)
async def deliveries(
    endpoint_id: str,
    runtime: RuntimeDep,
    api_key: ApiKeyDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]+$")] = None,
) -> DeliveryList:
    before = params.event_id(cursor) if cursor else None
    if cursor and before is None:  # past 2**63 - 1 the database's INTEGER overflows
        raise ApiError(422, "invalid_cursor", "the cursor is not one this API gave")

    async def job(store: WebhookStore) -> DeliveryList:
        await service.get_endpoint(store, endpoint_id)
        found = await store.deliveries(endpoint_id, limit, before)
        attempts = await store.attempts([d.id for d in found])
        more = len(found) == limit
        return DeliveryList(
            data=[DeliveryOut.of(d, attempts.get(d.id, [])) for d in found],
            next_cursor=str(found[-1].id) if more and found else None,
        )

    return await _read(runtime, job)


@router.post(
    "/events/{event_id}/redeliver",
    status_code=202,
    response_model=Queued,
    responses=ERRORS,
    summary="Send an event again (same webhook-id) to every endpoint that wants it",
)
async def redeliver(
    event_id: params.RowId,
    runtime: RuntimeDep,
    api_key: ApiKeyDep,
    endpoint_id: Annotated[str | None, Query(max_length=32)] = None,
) -> Queued:
    render = runtime.webhooks.render
    made = await _write(
        runtime,
        lambda store: service.redeliver_event(store, event_id, endpoint_id, render, _now()),
    )
    runtime.webhooks.dispatcher.wake()
    return Queued(queued=len(made))


@router.post(
    "/webhook-endpoints/{endpoint_id}/replay",
    status_code=202,
    response_model=Queued,
    responses=ERRORS,
    summary="Send again every event the endpoint wants between since and until",
)
async def replay(endpoint_id: str, body: Replay, runtime: RuntimeDep, api_key: ApiKeyDep) -> Queued:
    render = runtime.webhooks.render
    now = _now()
    until = body.until or now
    count = await _write(
        runtime,
        lambda store: service.replay(store, endpoint_id, body.since, until, render, now),
    )
    runtime.webhooks.dispatcher.wake()
    return Queued(queued=count)
