"""Use cases on a merchant's webhook endpoints: register, change, delete, rotate the secret,
and ask for events again (one event, or a time range for one endpoint)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from pixlive.domain.errors import DomainError
from pixlive.domain.webhook_endpoint import EVENT_TYPES, Endpoint, new_endpoint_id
from pixlive.domain.webhook_signing import new_secret
from pixlive.domain.webhook_url import RefusedUrl, UrlPolicy, check_url
from pixlive.services.webhook_payload import RenderCharge, new_delivery
from pixlive.services.webhook_ports import DeliveryKind, NewDelivery, WebhookStore

_REFUND_TYPE = re.compile(r"refund\.[a-z_]{1,40}")
MAX_EVENT_TYPES = 50
MAX_REPLAY = 10_000  # events one replay may ask for


class InvalidEndpoint(DomainError):
    code = "invalid_endpoint"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class EndpointNotFound(DomainError):
    code = "not_found"


class EventNotFound(DomainError):
    code = "not_found"


def _checked_url(url: str, policy: UrlPolicy) -> str:
    try:
        check_url(url, policy)
    except RefusedUrl as exc:
        raise InvalidEndpoint("invalid_url", str(exc)) from exc
    return url


def _checked_events(events: Sequence[str] | None) -> tuple[str, ...] | None:
    if events is None:
        return None
    if not events:
        raise InvalidEndpoint("invalid_events", "events: give at least one type, or leave it out")
    if len(events) > MAX_EVENT_TYPES:
        raise InvalidEndpoint("invalid_events", f"events: at most {MAX_EVENT_TYPES} types")
    for name in events:
        if name not in EVENT_TYPES and not _REFUND_TYPE.fullmatch(name):
            raise InvalidEndpoint(
                "invalid_events",
                f"events: {name[:60]!r} is not an event type (one of {', '.join(EVENT_TYPES)})",
            )
    return tuple(dict.fromkeys(events))


async def create_endpoint(
    store: WebhookStore,
    *,
    url: str,
    events: Sequence[str] | None,
    description: str | None,
    policy: UrlPolicy,
    now: datetime,
) -> Endpoint:
    endpoint = Endpoint(
        id=new_endpoint_id(),
        url=_checked_url(url, policy),
        description=description,
        events=_checked_events(events),
        enabled=True,
        secret=new_secret(),
        previous_secret=None,
        previous_secret_until=None,
        created_at=now,
        updated_at=now,
        start_event_id=await store.last_event_id(),
    )
    await store.add_endpoint(endpoint)
    return endpoint


async def get_endpoint(store: WebhookStore, endpoint_id: str) -> Endpoint:
    endpoint = await store.get_endpoint(endpoint_id)
    if endpoint is None:
        raise EndpointNotFound("no webhook endpoint with this id")
    return endpoint


async def update_endpoint(
    store: WebhookStore,
    endpoint_id: str,
    *,
    url: str | None,
    events: Sequence[str] | None,
    clear_events: bool,
    enabled: bool | None,
    description: str | None,
    policy: UrlPolicy,
    now: datetime,
) -> Endpoint:
    endpoint = await get_endpoint(store, endpoint_id)
    changed = replace(endpoint, updated_at=now)
    if url is not None:
        changed = replace(changed, url=_checked_url(url, policy))
    if clear_events:
        changed = replace(changed, events=None)
    elif events is not None:
        changed = replace(changed, events=_checked_events(events))
    if description is not None:
        changed = replace(changed, description=description)
    if enabled is True and not endpoint.enabled:
        # Back on: what happened while it was off is the merchant's to replay, on purpose.
        changed = replace(
            changed,
            enabled=True,
            disabled_reason=None,
            failing_since=None,
            start_event_id=await store.last_event_id(),
        )
    elif enabled is False and endpoint.enabled:
        changed = changed.disabled("by_merchant", now)
        await store.cancel_pending(endpoint.id, now)
    await store.save_endpoint(changed)
    return changed


async def delete_endpoint(store: WebhookStore, endpoint_id: str) -> None:
    if not await store.delete_endpoint(endpoint_id):
        raise EndpointNotFound("no webhook endpoint with this id")


async def rotate_secret(store: WebhookStore, endpoint_id: str, now: datetime) -> Endpoint:
    endpoint = (await get_endpoint(store, endpoint_id)).rotated(new_secret(), now)
    await store.save_endpoint(endpoint)
    return endpoint


async def redeliver_event(
    store: WebhookStore,
    event_id: int,
    endpoint_id: str | None,
    render: RenderCharge,
    now: datetime,
) -> list[NewDelivery]:
    """The event once more to every enabled endpoint that wants it (or to the one named),
    with the same webhook-id, so that a receiver that had it already can tell."""
    event = await store.event(event_id)
    if event is None:
        raise EventNotFound("no event with this id")
    if endpoint_id is not None:
        endpoints = [await get_endpoint(store, endpoint_id)]
    else:
        endpoints = [e for e in await store.list_endpoints() if e.enabled and e.wants(event.type)]
    charges = await store.charges([event.payment_id] if event.payment_id else [])
    made = [
        new_delivery(
            event, endpoint.id, charges.get(event.payment_id), render, DeliveryKind.REDELIVER, now
        )
        for endpoint in endpoints
    ]
    await store.add_deliveries(made, now)
    return made


async def replay(
    store: WebhookStore,
    endpoint_id: str,
    since: datetime,
    until: datetime,
    render: RenderCharge,
    now: datetime,
) -> int:
    """Every event the endpoint wants between `since` and `until`, again; how many."""
    endpoint = await get_endpoint(store, endpoint_id)
    if not endpoint.enabled:
        raise InvalidEndpoint("endpoint_disabled", "the endpoint is disabled: enable it first")
    if until <= since:
        raise InvalidEndpoint("invalid_range", "until must come after since")
    events = [
        event
        for event in await store.events_between(since, until, MAX_REPLAY + 1)
        if endpoint.wants(event.type)
    ]
    if len(events) > MAX_REPLAY:
        raise InvalidEndpoint(
            "range_too_large", f"more than {MAX_REPLAY} events in this range: ask for less"
        )
    charges = await store.charges({e.payment_id for e in events if e.payment_id})
    made = [
        new_delivery(
            event, endpoint.id, charges.get(event.payment_id), render, DeliveryKind.REPLAY, now
        )
        for event in events
    ]
    await store.add_deliveries(made, now)
    return len(made)
