"""SQL of the merchant webhooks (endpoints, deliveries, attempts, the fan-out cursor) on a
`Connection`: the same statements on SQLite and PostgreSQL, with the row locks that only
PostgreSQL has (SQLite serves one process, whose one writer already runs one at a time)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from pixlive.adapters.connection import Connection, Row
from pixlive.adapters.repository import CHARGE_COLUMNS, charge_from_row
from pixlive.domain.charge import Charge
from pixlive.domain.events import Event
from pixlive.domain.webhook_delivery import DeliveryStatus
from pixlive.domain.webhook_endpoint import Endpoint
from pixlive.services.webhook_ports import (
    Attempt,
    Delivery,
    NewDelivery,
    OutboxEvent,
    QueueStats,
)

T = TypeVar("T")

RecordEvent = Callable[[Event], Awaitable[object]]

ENDPOINT_COLUMNS = (
    "id, url, description, events, enabled, secret, previous_secret, previous_secret_until, "
    "created_at, updated_at, start_event_id, disabled_reason, failing_since"
)
DELIVERY_COLUMNS = (
    "id, endpoint_id, event_id, event_type, kind, msg_id, status, payload, attempts, "
    "next_attempt_at, last_status_code, created_at, updated_at"
)
_STATUS = {status.value: status for status in DeliveryStatus}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _at(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def endpoint_from_row(row: Row, offset: int = 0) -> Endpoint:
    values = tuple(row)[offset : offset + 13]
    events = orjson.loads(values[3]) if values[3] is not None else None
    return Endpoint(
        id=values[0],
        url=values[1],
        description=values[2],
        events=tuple(events) if events is not None else None,
        enabled=bool(values[4]),
        secret=values[5],
        previous_secret=values[6],
        previous_secret_until=_at(values[7]),
        created_at=_when(values[8]),
        updated_at=_when(values[9]),
        start_event_id=values[10],
        disabled_reason=values[11],
        failing_since=_at(values[12]),
    )


def _endpoint_args(endpoint: Endpoint) -> tuple[object, ...]:
    return (
        endpoint.id,
        endpoint.url,
        endpoint.description,
        orjson.dumps(list(endpoint.events)).decode() if endpoint.events is not None else None,
        1 if endpoint.enabled else 0,
        endpoint.secret,
        endpoint.previous_secret,
        _ms(endpoint.previous_secret_until) if endpoint.previous_secret_until else None,
        _ms(endpoint.created_at),
        _ms(endpoint.updated_at),
        endpoint.start_event_id,
        endpoint.disabled_reason,
        _ms(endpoint.failing_since) if endpoint.failing_since else None,
    )


def delivery_from_row(row: Row) -> Delivery:
    values = tuple(row)[:13]
    return Delivery(
        id=values[0],
        endpoint_id=values[1],
        event_id=values[2],
        event_type=values[3],
        kind=values[4],
        msg_id=values[5],
        status=_STATUS[values[6]],
        payload=values[7],
        attempts=values[8],
        next_attempt_at=_at(values[9]),
        last_status_code=values[10],
        created_at=_when(values[11]),
        updated_at=_when(values[12]),
    )


def _event(row: Row) -> OutboxEvent:
    data: dict[str, Any] = orjson.loads(row["data"])
    return OutboxEvent(
        id=row["id"],
        type=row["type"],
        payment_id=row["payment_id"],
        status=row["status"],
        at=_when(row["at"]),
        data=data,
    )


class SqlWebhookStore:
    def __init__(self, conn: Connection, record: RecordEvent | None = None) -> None:
        self.conn = conn
        self._record = record
        self._pg = conn.dialect == "postgresql"

    # endpoints ---------------------------------------------------------------------------

    async def add_endpoint(self, endpoint: Endpoint) -> None:
        await self.conn.execute(
            f"INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            *_endpoint_args(endpoint),
        )

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        await self.conn.execute(
            "UPDATE webhook_endpoints SET url = $2, description = $3, events = $4, "
            "enabled = $5, secret = $6, previous_secret = $7, previous_secret_until = $8, "
            "created_at = $9, updated_at = $10, start_event_id = $11, disabled_reason = $12, "
            "failing_since = $13 WHERE id = $1",
            *_endpoint_args(endpoint),
        )

    async def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        row = await self.conn.fetchrow(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1", endpoint_id
        )
        return endpoint_from_row(row) if row is not None else None

    async def list_endpoints(self) -> list[Endpoint]:
        rows = await self.conn.fetch(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"
        )
        return [endpoint_from_row(row) for row in rows]

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        await self.conn.execute(
            "DELETE FROM webhook_attempts WHERE delivery_id IN "
            "(SELECT id FROM webhook_deliveries WHERE endpoint_id = $1)",
            endpoint_id,
        )
        await self.conn.execute(
            "DELETE FROM webhook_deliveries WHERE endpoint_id = $1", endpoint_id
        )
        deleted = await self.conn.execute(
            "DELETE FROM webhook_endpoints WHERE id = $1", endpoint_id
        )
        return deleted > 0

    # the outbox --------------------------------------------------------------------------

    async def last_event_id(self) -> int:
        row = await self.conn.fetchrow("SELECT COALESCE(MAX(id), 0) AS id FROM events")
        return int(row["id"]) if row is not None else 0

    async def take_cursor(self) -> int | None:
        lock = " FOR UPDATE SKIP LOCKED" if self._pg else ""
        row = await self.conn.fetchrow(
            f"SELECT event_id FROM webhook_cursor WHERE name = 'fanout'{lock}"
        )
        if row is not None:
            return int(row["event_id"])
        if self._pg:
            exists = await self.conn.fetchrow("SELECT 1 FROM webhook_cursor WHERE name = 'fanout'")
            if exists is not None:
                return None  # another process holds it
        await self.conn.execute(
            "INSERT INTO webhook_cursor (name, event_id) VALUES ('fanout', 0) "
            "ON CONFLICT (name) DO NOTHING"
        )
        return None

    async def set_cursor(self, event_id: int) -> None:
        await self.conn.execute(
            "UPDATE webhook_cursor SET event_id = $1 WHERE name = 'fanout' AND event_id < $1",
            event_id,
        )

    async def events_after(self, event_id: int, limit: int) -> list[OutboxEvent]:
        rows = await self.conn.fetch(
            "SELECT id, payment_id, type, status, at, data FROM events "
            "WHERE id > $1 ORDER BY id LIMIT $2",
            event_id,
            limit,
        )
        return [_event(row) for row in rows]

    async def events_between(
        self, since: datetime, until: datetime, limit: int
    ) -> list[OutboxEvent]:
        # `at` has no index: a replay is rare, bounded, and asked for by hand.
        rows = await self.conn.fetch(
            "SELECT id, payment_id, type, status, at, data FROM events "
            "WHERE at >= $1 AND at < $2 ORDER BY id LIMIT $3",
            _ms(since),
            _ms(until),
            limit,
        )
        return [_event(row) for row in rows]

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
        where = ["at >= $1"]
        args: list[object] = [_ms(since)]
        if until is not None:
            args.append(_ms(until))
            where.append(f"at < ${len(args)}")
        if before is not None:
            args.append(before)
            where.append(f"id < ${len(args)}")
        if payment_id is not None:
            args.append(payment_id)
            where.append(f"payment_id = ${len(args)}")
        if types:
            marks = []
            for name in types:
                args.append(name)
                marks.append(f"${len(args)}")
            where.append(f"type IN ({', '.join(marks)})")
        args.append(limit)
        rows = await self.conn.fetch(
            "SELECT id, payment_id, type, status, at, data FROM events "
            f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ${len(args)}",
            *args,
        )
        return [_event(row) for row in rows]

    async def event(self, event_id: int) -> OutboxEvent | None:
        row = await self.conn.fetchrow(
            "SELECT id, payment_id, type, status, at, data FROM events WHERE id = $1", event_id
        )
        return _event(row) if row is not None else None

    async def charges(self, charge_ids: Collection[str]) -> dict[str, Charge]:
        found: dict[str, Charge] = {}
        ids = sorted(charge_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join(f"${n}" for n in range(1, len(chunk) + 1))
            rows = await self.conn.fetch(
                f"SELECT {CHARGE_COLUMNS} FROM charges WHERE id IN ({marks})", *chunk
            )
            for row in rows:
                charge = charge_from_row(row)
                found[charge.id] = charge
        return found

    async def record_event(self, event: Event) -> None:
        assert self._record is not None, "events are recorded in a write transaction"
        await self._record(event)

    # deliveries --------------------------------------------------------------------------

    async def add_deliveries(self, deliveries: list[NewDelivery], now: datetime) -> int:
        added = 0
        stamp = _ms(now)
        for item in deliveries:
            added += await self.conn.execute(
                "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, kind, "
                "msg_id, status, payload, attempts, next_attempt_at, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $5, 'pending', $6, 0, $7, $8, $8) "
                "ON CONFLICT (event_id, endpoint_id) WHERE kind = 'event' DO NOTHING",
                item.endpoint_id,
                item.event_id,
                item.event_type,
                item.kind,
                item.msg_id,
                item.payload,
                _ms(item.due),
                stamp,
            )
        return added

    async def claim(
        self,
        now: datetime,
        lease_until: datetime,
        owner: str,
        limit: int,
        room: Callable[[str], int],
    ) -> list[tuple[Delivery, Endpoint]]:
        stamp = _ms(now)
        lock = " FOR UPDATE SKIP LOCKED" if self._pg else ""
        endpoints = [e for e in await self.list_endpoints() if e.enabled]
        random.shuffle(endpoints)  # when the slots run out, no endpoint is always last
        claimed: list[tuple[Delivery, Endpoint]] = []
        for endpoint in endpoints:
            take = min(room(endpoint.id), limit - len(claimed))
            if take <= 0:
                continue
            rows = await self.conn.fetch(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, "
                "lease_until = $4, lease_owner = $5, updated_at = $1 "
                "WHERE id IN (SELECT id FROM webhook_deliveries "
                "WHERE endpoint_id = $2 AND status = 'pending' AND next_attempt_at <= $1 "
                "AND (lease_until IS NULL OR lease_until <= $1) "
                f"ORDER BY next_attempt_at LIMIT $3{lock}) "
                f"RETURNING {DELIVERY_COLUMNS}",
                stamp,
                endpoint.id,
                take,
                _ms(lease_until),
                owner,
            )
            claimed.extend((delivery_from_row(row), endpoint) for row in rows)
            if len(claimed) >= limit:
                break
        return claimed

    async def finish_attempt(
        self,
        delivery: Delivery,
        owner: str,
        attempt: Attempt,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> bool:
        changed = await self.conn.execute(
            "UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, "
            "lease_until = NULL, lease_owner = NULL, last_status_code = $3, updated_at = $4 "
            "WHERE id = $5 AND lease_owner = $6 AND attempts = $7 AND status = 'pending'",
            status.value,
            _ms(next_attempt_at) if next_attempt_at else None,
            attempt.status_code,
            _ms(attempt.at),
            delivery.id,
            owner,
            delivery.attempts,
        )
        if not changed:
            return False
        await self.conn.execute(
            "INSERT INTO webhook_attempts (delivery_id, number, at, status_code, error, "
            "latency_ms, response) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            attempt.delivery_id,
            attempt.number,
            _ms(attempt.at),
            attempt.status_code,
            attempt.error,
            attempt.latency_ms,
            attempt.response,
        )
        return True

    async def cancel_pending(self, endpoint_id: str, now: datetime) -> int:
        return await self.conn.execute(
            "UPDATE webhook_deliveries SET status = 'cancelled', next_attempt_at = NULL, "
            "lease_until = NULL, lease_owner = NULL, updated_at = $2 "
            "WHERE endpoint_id = $1 AND status = 'pending'",
            endpoint_id,
            _ms(now),
        )

    async def deliveries(self, endpoint_id: str, limit: int, before: int | None) -> list[Delivery]:
        rows = await self.conn.fetch(
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries "
            "WHERE endpoint_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            endpoint_id,
            before if before is not None else 2**62,
            limit,
        )
        return [delivery_from_row(row) for row in rows]

    async def attempts(self, delivery_ids: Collection[int]) -> dict[int, list[Attempt]]:
        found: dict[int, list[Attempt]] = {d: [] for d in delivery_ids}
        if not found:
            return found
        ids = sorted(found)
        marks = ", ".join(f"${n}" for n in range(1, len(ids) + 1))
        rows = await self.conn.fetch(
            "SELECT delivery_id, number, at, status_code, error, latency_ms, response "
            f"FROM webhook_attempts WHERE delivery_id IN ({marks}) ORDER BY delivery_id, number",
            *ids,
        )
        for row in rows:
            found[row["delivery_id"]].append(
                Attempt(
                    delivery_id=row["delivery_id"],
                    number=row["number"],
                    at=_when(row["at"]),
                    status_code=row["status_code"],
                    error=row["error"],
                    latency_ms=float(row["latency_ms"]),
                    response=row["response"],
                )
            )
        return found

    async def next_due(self, now: datetime) -> datetime | None:
        # By the due index: the leased rows it walks first are at most the leases in flight.
        # A lease that lapses (its process died) is found by the next idle look.
        row = await self.conn.fetchrow(
            "SELECT next_attempt_at FROM webhook_deliveries WHERE status = 'pending' "
            "AND (lease_until IS NULL OR lease_until <= $1) ORDER BY next_attempt_at LIMIT 1",
            _ms(now),
        )
        return _at(row["next_attempt_at"]) if row is not None else None

    async def queue_stats(self) -> QueueStats:
        row = await self.conn.fetchrow(
            "SELECT COUNT(*) AS pending, MIN(next_attempt_at) AS oldest "
            "FROM webhook_deliveries WHERE status = 'pending'"
        )
        if row is None:
            return QueueStats(0, None)
        return QueueStats(int(row["pending"]), _at(row["oldest"]))
