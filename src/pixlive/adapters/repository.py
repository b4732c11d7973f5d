"""SQL for charges, events, the ledger of received Pix, API keys and idempotency keys.

Plain SQL on a `Connection`, so that the same statements run on SQLite and PostgreSQL
without an ORM's per-statement cost on the hot path. Times are integer milliseconds (UTC).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from pixlive.adapters.connection import Connection, Row
from pixlive.domain.charge import Charge, Payer, Status
from pixlive.domain.events import Event, RecordedEvent


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


@dataclass(frozen=True)
class ReceivedPix:
    """One Pix as the ledger holds it: recorded once per endToEndId, whatever followed."""

    end_to_end_id: str
    txid: str | None
    value: int
    horario: str
    raw: dict[str, Any]
    outcome: str
    payment_id: str | None
    received_at: datetime


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class IdempotencyRecord:
    request_hash: str
    payment_id: str


_CHARGE_COLUMNS = (
    "id, value, status, description, created_at, expires_at, paid_at, end_to_end_id, "
    "payer, metadata, brcode, last_event_id"
)


def charge_from_row(row: Row) -> Charge:
    payer = json.loads(row["payer"]) if row["payer"] else None
    return Charge(
        id=row["id"],
        value=row["value"],
        status=Status(row["status"]),
        description=row["description"],
        created_at=from_ms(row["created_at"]),
        expires_at=from_ms(row["expires_at"]),
        paid_at=from_ms(row["paid_at"]) if row["paid_at"] is not None else None,
        end_to_end_id=row["end_to_end_id"],
        payer=Payer(**payer) if payer else None,
        metadata=json.loads(row["metadata"]) if row["metadata"] else {},
        brcode=row["brcode"],
        last_event_id=row["last_event_id"],
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


class Repository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = " FOR UPDATE" if conn.dialect == "postgresql" else ""

    # charges -------------------------------------------------------------------------

    async def get_charge(self, charge_id: str, *, for_update: bool = False) -> Charge | None:
        sql = f"SELECT {_CHARGE_COLUMNS} FROM charges WHERE id = $1"
        row = await self.conn.fetchrow(sql + (self._lock if for_update else ""), charge_id)
        return charge_from_row(row) if row is not None else None

    async def add_charge(self, charge: Charge) -> None:
        payer = None
        if charge.payer is not None:
            payer = _dumps({k: v for k, v in vars(charge.payer).items() if v is not None})
        await self.conn.execute(
            "INSERT INTO charges (id, value, status, description, created_at, expires_at, "
            "payer, metadata, brcode, last_event_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)",
            charge.id,
            charge.value,
            charge.status.value,
            charge.description,
            to_ms(charge.created_at),
            to_ms(charge.expires_at),
            payer,
            _dumps(charge.metadata),
            charge.brcode,
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
            f"SELECT {_CHARGE_COLUMNS} FROM charges {where}"
            f"ORDER BY created_at DESC, id DESC LIMIT ${len(args)}",
            *args,
        )
        return [charge_from_row(row) for row in rows]

    # events (the outbox) -------------------------------------------------------------

    async def add_event(self, event: Event) -> RecordedEvent:
        row = await self.conn.fetchrow(
            "INSERT INTO events (payment_id, type, status, at, data) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            event.payment_id,
            event.type,
            str(event.status),
            to_ms(event.at),
            _dumps(event.data),
        )
        assert row is not None
        event_id: int = row["id"]
        await self.conn.execute(
            "UPDATE charges SET last_event_id = $1 WHERE id = $2", event_id, event.payment_id
        )
        return RecordedEvent(
            id=event_id,
            type=event.type,
            payment_id=event.payment_id,
            status=str(event.status),
            at=from_ms(to_ms(event.at)),
            data=event.data,
        )

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

    # the ledger of received Pix -------------------------------------------------------

    async def add_received(self, pix: ReceivedPix) -> bool:
        """Records a Pix; False when its endToEndId is already in the books."""
        row = await self.conn.fetchrow(
            "INSERT INTO received_pix (end_to_end_id, txid, value, horario, raw, outcome, "
            "payment_id, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (end_to_end_id) DO NOTHING RETURNING end_to_end_id",
            pix.end_to_end_id,
            pix.txid,
            pix.value,
            pix.horario,
            _dumps(pix.raw),
            pix.outcome,
            pix.payment_id,
            to_ms(pix.received_at),
        )
        return row is not None

    async def set_received_outcome(
        self, end_to_end_id: str, outcome: str, payment_id: str | None
    ) -> None:
        await self.conn.execute(
            "UPDATE received_pix SET outcome = $1, payment_id = $2 WHERE end_to_end_id = $3",
            outcome,
            payment_id,
            end_to_end_id,
        )

    async def get_received(self, end_to_end_id: str) -> ReceivedPix | None:
        row = await self.conn.fetchrow(
            "SELECT end_to_end_id, txid, value, horario, raw, outcome, payment_id, received_at "
            "FROM received_pix WHERE end_to_end_id = $1",
            end_to_end_id,
        )
        if row is None:
            return None
        return ReceivedPix(
            end_to_end_id=row["end_to_end_id"],
            txid=row["txid"],
            value=row["value"],
            horario=row["horario"],
            raw=json.loads(row["raw"]),
            outcome=row["outcome"],
            payment_id=row["payment_id"],
            received_at=from_ms(row["received_at"]),
        )

    async def count_received(self) -> int:
        row = await self.conn.fetchrow("SELECT COUNT(*) AS n FROM received_pix")
        return int(row["n"]) if row is not None else 0

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
