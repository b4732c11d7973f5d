"""What the webhook use cases need from the outside, and the records that cross it: the
store (endpoints, the outbox's events, deliveries and their attempts), the transactions it
runs in, and the sender that makes one HTTP attempt."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pixlive.domain.charge import Charge
from pixlive.domain.events import Event
from pixlive.domain.webhook_delivery import Answer, DeliveryStatus
from pixlive.domain.webhook_endpoint import Endpoint

T = TypeVar("T")


class DeliveryKind:
    EVENT = "event"  # fanned out from the outbox, once per (event, endpoint)
    REDELIVER = "redeliver"  # POST /events/{id}/redeliver
    REPLAY = "replay"  # POST /webhook-endpoints/{id}/replay


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    type: str
    payment_id: str
    status: str
    at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class NewDelivery:
    endpoint_id: str
    event_id: int
    event_type: str
    kind: str
    msg_id: str
    payload: str
    due: datetime


@dataclass(frozen=True)
class Delivery:
    id: int
    endpoint_id: str
    event_id: int
    event_type: str
    kind: str
    msg_id: str
    status: DeliveryStatus
    payload: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Attempt:
    delivery_id: int
    number: int
    at: datetime
    status_code: int | None
    error: str | None
    latency_ms: float
    response: str


@dataclass(frozen=True)
class QueueStats:
    pending: int
    oldest_due: datetime | None


class WebhookStore(Protocol):
    # endpoints
    async def add_endpoint(self, endpoint: Endpoint) -> None: ...
    async def save_endpoint(self, endpoint: Endpoint) -> None: ...
    async def get_endpoint(self, endpoint_id: str) -> Endpoint | None: ...
    async def list_endpoints(self) -> list[Endpoint]: ...
    async def delete_endpoint(self, endpoint_id: str) -> bool:
        """Deletes the endpoint with its deliveries and their attempts."""
        ...

    # the outbox
    async def last_event_id(self) -> int: ...
    async def take_cursor(self) -> int | None:
        """How far events were fanned out, locked for this transaction; None when another
        process holds it (it is fanning out now)."""
        ...

    async def set_cursor(self, event_id: int) -> None: ...
    async def events_after(self, event_id: int, limit: int) -> list[OutboxEvent]: ...
    async def events_between(
        self, since: datetime, until: datetime, limit: int
    ) -> list[OutboxEvent]: ...
    async def events_page(
        self,
        *,
        types: Collection[str] | None,
        payment_id: str | None,
        since: datetime,
        until: datetime | None,
        before: int | None,
        limit: int,
    ) -> list[OutboxEvent]:
        """Newest first, ids below `before`."""
        ...

    async def event(self, event_id: int) -> OutboxEvent | None: ...
    async def charges(self, charge_ids: Collection[str]) -> dict[str, Charge]: ...
    async def record_event(self, event: Event) -> None:
        """Writes an event row beside this transaction's changes, published after commit."""
        ...

    # deliveries
    async def add_deliveries(self, deliveries: list[NewDelivery], now: datetime) -> int:
        """Adds them, skipping an (event, endpoint) fanned out before; how many were new."""
        ...

    async def claim(
        self,
        now: datetime,
        lease_until: datetime,
        owner: str,
        limit: int,
        room: Callable[[str], int],
    ) -> list[tuple[Delivery, Endpoint]]:
        """Up to `limit` due deliveries of enabled endpoints, at most `room(endpoint id)` of
        each, leased to `owner` (skipping those another transaction holds), each counted as
        one more attempt."""
        ...

    async def finish_attempt(
        self,
        delivery: Delivery,
        owner: str,
        attempt: Attempt,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> bool:
        """Records the attempt and the delivery's new state, if `owner` still holds it."""
        ...

    async def cancel_pending(self, endpoint_id: str, now: datetime) -> int: ...
    async def deliveries(
        self, endpoint_id: str, limit: int, before: int | None
    ) -> list[Delivery]: ...
    async def attempts(self, delivery_ids: Collection[int]) -> dict[int, list[Attempt]]: ...
    async def next_due(self, now: datetime) -> datetime | None:
        """When the next delivery not leased falls due."""
        ...

    async def queue_stats(self) -> QueueStats: ...


Job = Callable[[WebhookStore], Awaitable[T]]


class Transactions(Protocol):
    async def write(self, job: Job[T]) -> T:
        """Runs `job` in a write transaction; returns once it committed."""
        ...

    async def read(self, job: Job[T]) -> T: ...


class Sender(Protocol):
    async def send(self, url: str, headers: dict[str, str], body: bytes) -> Answer:
        """One HTTP POST; any failure (refused address, timeout, connection) is an Answer
        with no status code and the error's description."""
        ...

    async def close(self) -> None: ...


Clock = Callable[[], datetime]
