"""SQL for charges, events, the ledger of received Pix, API keys and idempotency keys.

Plain SQL on a `Connection`, so that the same statements run on SQLite and PostgreSQL
without an ORM's per-statement cost on the hot path. Times are integer milliseconds (UTC).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson

from pixlive.adapters.connection import Connection, Row
from pixlive.domain.charge import Charge, Payer, Status
from pixlive.domain.events import Event, RecordedEvent
from pixlive.services.records import ApiKey, IdempotencyRecord, ReceivedPix


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


CHARGE_COLUMNS = (
    "id, value, status, description, created_at, expires_at, paid_at, end_to_end_id, "
    "payer, metadata, brcode, last_event_id, return_url"
)


# By value: a dict lookup, where Status(...) goes through the Enum machinery (the hot path
# reads a charge per confirmation).
_STATUS = {status.value: status for status in Status}


def charge_from_row(row: Row) -> Charge:
    # Positional, in CHARGE_COLUMNS' order: reading a row by name costs a lookup each.
    (
        id_,
        value,
        status,
        description,
        created_at,
        expires_at,
        paid_at,
        end_to_end_id,
        payer,
        metadata,
        brcode,
        last_event_id,
        return_url,
    ) = row
    payer = orjson.loads(payer) if payer else None
    return Charge(
        id=id_,
        value=value,
        status=_STATUS[status],
        description=description,
        created_at=datetime.fromtimestamp(created_at / 1000, tz=UTC),
        expires_at=datetime.fromtimestamp(expires_at / 1000, tz=UTC),
        paid_at=datetime.fromtimestamp(paid_at / 1000, tz=UTC) if paid_at is not None else None,
        end_to_end_id=end_to_end_id,
        payer=Payer(**payer) if payer else None,
        metadata=orjson.loads(metadata) if metadata else {},
        brcode=brcode,
        last_event_id=last_event_id,
        return_url=return_url,
    )


def event_from_row(row: Row) -> RecordedEvent:
    return RecordedEvent(
        id=row["id"],
        type=row["type"],
        payment_id=row["payment_id"],
        status=row["status"],
        at=from_ms(row["at"]),
        data=json.loads(row["data"]),
    )


def received_args(pix: ReceivedPix) -> tuple[object, ...]:
    return (
        pix.end_to_end_id,
        pix.txid,
        pix.value,
        pix.horario,
        _dumps(pix.raw),
        pix.outcome,
        pix.payment_id,
        to_ms(pix.received_at),
    )


def event_args(event: Event) -> tuple[object, ...]:
    return (event.payment_id, event.type, str(event.status), to_ms(event.at), _dumps(event.data))


def recorded_event(event_id: int, event: Event) -> RecordedEvent:
    return RecordedEvent(
        id=event_id,
        type=event.type,
        payment_id=event.payment_id,
        status=str(event.status),
        at=from_ms(to_ms(event.at)),
        data=event.data,
    )


class Repository:
    """The `Queries` and the row-at-a-time `Repository` of services/ports.py, on one
    connection; the dialects' stores (sqlite_store.py, postgres_store.py) add the set-wise
    confirmation statements."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = " FOR UPDATE" if conn.dialect == "postgresql" else ""

    # charges -------------------------------------------------------------------------

    async def get_charge(self, charge_id: str, *, for_update: bool = False) -> Charge | None:
        sql = f"SELECT {CHARGE_COLUMNS} FROM charges WHERE id = $1"
        row = await self.conn.fetchrow(sql + (self._lock if for_update else ""), charge_id)
        return charge_from_row(row) if row is not None else None

    async def add_charge(self, charge: Charge) -> None:
        payer = None
        if charge.payer is not None:
            payer = _dumps({k: v for k, v in vars(charge.payer).items() if v is not None})
        await self.conn.execute(
            "INSERT INTO charges (id, value, status, description, created_at, expires_at, "
            "payer, metadata, brcode, last_event_id, return_url) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10)",
            charge.id,
            charge.value,
            charge.status.value,
            charge.description,
            to_ms(charge.created_at),
            to_ms(charge.expires_at),
            payer,
            _dumps(charge.metadata),
            charge.brcode,
            charge.return_url,
        )

    async def save_status(self, charge: Charge, *, expected: Status) -> bool:
        """Writes the charge's new status only if the row still has `expected`: the guard
        that makes each final transition happen once, whoever else is writing."""
        changed = await self.conn.execute(
            "UPDATE charges SET status = $1, paid_at = $2, end_to_end_id = $3 "
            "WHERE id = $4 AND status = $5",
            charge.status.value,
            to_ms(charge.paid_at) if charge.paid_at else None,
            charge.end_to_end_id,
            charge.id,
            expected.value,
        )
        return changed == 1

    async def expire_due(self, now: datetime, limit: int) -> list[str]:
        rows = await self.conn.fetch(
            "UPDATE charges SET status = 'EXPIRED' WHERE id IN ("
            "SELECT id FROM charges WHERE status = 'ACTIVE' AND expires_at <= $1 "
            "ORDER BY expires_at LIMIT $2) AND status = 'ACTIVE' RETURNING id",
            to_ms(now),
            limit,
        )
        return [row["id"] for row in rows]

    async def list_charges(
        self,
        *,
        status: Status | None,
        before: tuple[int, str] | None,
        limit: int,
        now: datetime | None = None,
    ) -> list[Charge]:
        """Newest first; `before` is the (created_at ms, id) of the last charge already seen.

        With `now`, the status filter means the status a reader sees at that moment
        (`Charge.status_at`): an ACTIVE charge past its expiry that the sweeper has not
        reached yet is listed under EXPIRED, not under ACTIVE.
        """
        clauses: list[str] = []
        args: list[object] = []
        if status is not None:
            args.append(status.value)
            clauses.append(f"status = ${len(args)}")
            if now is not None and status in (Status.ACTIVE, Status.EXPIRED):
                args.append(to_ms(now))
                n = len(args)
                clauses[-1] = (
                    f"status = ${n - 1} AND expires_at > ${n}"
                    if status is Status.ACTIVE
                    else f"(status = ${n - 1} OR (status = 'ACTIVE' AND expires_at <= ${n}))"
                )
        if before is not None:
            args.extend(before)
            n = len(args)
            clauses.append(f"(created_at < ${n - 1} OR (created_at = ${n - 1} AND id < ${n}))")
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        args.append(limit)
        rows = await self.conn.fetch(
            f"SELECT {CHARGE_COLUMNS} FROM charges {where}"
            f"ORDER BY created_at DESC, id DESC LIMIT ${len(args)}",
            *args,
        )
        return [charge_from_row(row) for row in rows]

    # events (the outbox) -------------------------------------------------------------

    async def add_event(self, event: Event) -> RecordedEvent:
        recorded = await self._insert_event(event)
        await self.conn.execute(
            "UPDATE charges SET last_event_id = $1 WHERE id = $2", recorded.id, event.payment_id
        )
        return recorded

    async def _insert_event(self, event: Event) -> RecordedEvent:
        row = await self.conn.fetchrow(
            "INSERT INTO events (payment_id, type, status, at, data) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            *event_args(event),
        )
        assert row is not None
        return recorded_event(row["id"], event)

    async def events_after(self, payment_id: str, after: int, limit: int) -> list[RecordedEvent]:
        rows = await self.conn.fetch(
            "SELECT id, payment_id, type, status, at, data FROM events "
            "WHERE payment_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            payment_id,
            after,
            limit,
        )
        return [event_from_row(row) for row in rows]

    async def all_events_after(self, after: int, limit: int) -> list[RecordedEvent]:
        rows = await self.conn.fetch(
            "SELECT id, payment_id, type, status, at, data FROM events "
            "WHERE id > $1 ORDER BY id LIMIT $2",
            after,
            limit,
        )
        return [event_from_row(row) for row in rows]

    async def last_event_id(self) -> int:
        row = await self.conn.fetchrow("SELECT COALESCE(MAX(id), 0) AS last FROM events")
        return int(row["last"]) if row is not None else 0

    # idempotency keys -------------------------------------------------------------------

    async def get_idempotency(self, api_key_id: int, key: str) -> IdempotencyRecord | None:
        row = await self.conn.fetchrow(
            "SELECT request_hash, payment_id FROM idempotency_keys "
            "WHERE api_key_id = $1 AND key = $2",
            api_key_id,
            key,
        )
        if row is None:
            return None
        return IdempotencyRecord(request_hash=row["request_hash"], payment_id=row["payment_id"])

    async def add_idempotency(
        self, api_key_id: int, key: str, request_hash: str, payment_id: str, now: datetime
    ) -> None:
        await self.conn.execute(
            "INSERT INTO idempotency_keys (api_key_id, key, request_hash, payment_id, created_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            api_key_id,
            key,
            request_hash,
            payment_id,
            to_ms(now),
        )

    # API keys -----------------------------------------------------------------------

    async def add_api_key(self, name: str, key_hash: str, prefix: str, now: datetime) -> None:
        await self.conn.execute(
            "INSERT INTO api_keys (name, key_hash, prefix, created_at) VALUES ($1, $2, $3, $4)",
            name,
            key_hash,
            prefix,
            to_ms(now),
        )

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        row = await self.conn.fetchrow(
            "SELECT id, name, prefix, created_at, revoked_at FROM api_keys "
            "WHERE key_hash = $1 AND revoked_at IS NULL",
            key_hash,
        )
        return _api_key(row) if row is not None else None

    async def list_api_keys(self) -> list[ApiKey]:
        rows = await self.conn.fetch(
            "SELECT id, name, prefix, created_at, revoked_at FROM api_keys ORDER BY id"
        )
        return [_api_key(row) for row in rows]

    async def revoke_api_key(self, name: str, now: datetime) -> bool:
        changed = await self.conn.execute(
            "UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
            to_ms(now),
            name,
        )
        return changed > 0


def _api_key(row: Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        created_at=from_ms(row["created_at"]),
        revoked_at=from_ms(row["revoked_at"]) if row["revoked_at"] is not None else None,
    )
