"""SQL for charges, events, the ledger of received Pix, API keys and idempotency keys.

Plain SQL on a `Connection`, so that the same statements run on SQLite and PostgreSQL
without an ORM's per-statement cost on the hot path. Times are integer milliseconds (UTC).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
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


# The charge's UPDATE inside record_pix's PostgreSQL statement, whose arguments follow the
# ledger's ($1 to $8) and the event's ($9 to $13).
_SET_STATUS_FROM_EVENT = (
    "UPDATE charges SET last_event_id = event.id, status = $14, paid_at = $15, "
    "end_to_end_id = $16 FROM event WHERE charges.id = $17 AND charges.status = $18"
)
_SET_LAST_EVENT_FROM_EVENT = (
    "UPDATE charges SET last_event_id = event.id FROM event WHERE charges.id = $14"
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


def _event_args(event: Event) -> tuple[object, ...]:
    return (event.payment_id, event.type, str(event.status), to_ms(event.at), _dumps(event.data))


def _status_args(charge: Charge, replaces: Status) -> tuple[object, ...]:
    """The new status columns, then the charge's id and the only status they may replace."""
    return (
        charge.status.value,
        to_ms(charge.paid_at) if charge.paid_at else None,
        charge.end_to_end_id,
        charge.id,
        replaces.value,
    )


def _recorded(event_id: int, event: Event) -> RecordedEvent:
    return RecordedEvent(
        id=event_id,
        type=event.type,
        payment_id=event.payment_id,
        status=str(event.status),
        at=from_ms(to_ms(event.at)),
        data=event.data,
    )


class LockedCharges:
    """Charge rows a group-committed batch read and locked together, in one statement,
    before its use cases ran (one round trip instead of one per use case).

    A row stays as read only until something in the batch writes to that charge; so each
    row is handed out once, and forgotten when written to: any later read of that charge
    goes to the database, which has the batch's own writes.
    """

    def __init__(self, rows: dict[str, Row]) -> None:
        self._rows = rows

    def take(self, charge_id: str) -> Row | None:
        return self._rows.pop(charge_id, None)

    def forget(self, charge_id: str) -> None:
        self._rows.pop(charge_id, None)


class Repository:
    def __init__(self, conn: Connection, locked: LockedCharges | None = None) -> None:
        self.conn = conn
        self._lock = " FOR UPDATE" if conn.dialect == "postgresql" else ""
        self._locked = locked

    # charges -------------------------------------------------------------------------

    async def lock_charges(self, charge_ids: Collection[str]) -> LockedCharges | None:
        """Reads and locks these charges at once, for the use cases of a batch to take from;
        None where a read costs no round trip (SQLite), so that nothing is gained."""
        if not self._lock or not charge_ids:
            return None
        # In id order, as every batch does, so that two batches never wait on each other
        # in a cycle over the same charges.
        rows = await self.conn.fetch(
            f"SELECT {CHARGE_COLUMNS} FROM charges WHERE id = ANY($1::text[]) "
            "ORDER BY id FOR UPDATE",
            sorted(set(charge_ids)),
        )
        return LockedCharges({row["id"]: row for row in rows})

    async def get_charge(self, charge_id: str, *, for_update: bool = False) -> Charge | None:
        row = self._locked.take(charge_id) if self._locked is not None else None
        if row is None:
            sql = f"SELECT {CHARGE_COLUMNS} FROM charges WHERE id = $1"
            row = await self.conn.fetchrow(sql + (self._lock if for_update else ""), charge_id)
        return charge_from_row(row) if row is not None else None

    def _written(self, charge_id: str) -> None:
        if self._locked is not None:
            self._locked.forget(charge_id)

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
        self._written(charge.id)
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
        expired = [row["id"] for row in rows]
        for charge_id in expired:
            self._written(charge_id)
        return expired

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
        self._written(event.payment_id)
        await self.conn.execute(
            "UPDATE charges SET last_event_id = $1 WHERE id = $2", recorded.id, event.payment_id
        )
        return recorded

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
        added = await self.conn.execute(
            "INSERT INTO received_pix (end_to_end_id, txid, value, horario, raw, outcome, "
            "payment_id, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (end_to_end_id) DO NOTHING",
            *received_args(pix),
        )
        return added == 1

    async def record_pix(
        self,
        pix: ReceivedPix,
        charge: Charge | None = None,
        *,
        replaces: Status | None = None,
        events: Sequence[Event] = (),
    ) -> list[RecordedEvent] | None:
        """Records a Pix and, only if its endToEndId is new to the books, what it did to its
        charge: the events, and the charge's new status when the Pix changed it (written
        only over `replaces`, the status it had). None when the Pix was already recorded.

        The usual case, one event, is one statement on PostgreSQL: a confirmation's writes
        cost one round trip instead of four.
        """
        if charge is not None and len(events) == 1 and self.conn.dialect == "postgresql":
            return await self._record_pix_with_one_event(pix, charge, replaces, events[0])
        if not await self.add_received(pix):
            return None
        recorded = [await self._insert_event(event) for event in events]
        if charge is not None and recorded:
            await self._update_charge(charge, replaces, recorded[-1].id)
        return recorded

    async def _record_pix_with_one_event(
        self, pix: ReceivedPix, charge: Charge, replaces: Status | None, event: Event
    ) -> list[RecordedEvent] | None:
        self._written(charge.id)
        row = await self.conn.fetchrow(
            "WITH ledger AS ("
            "INSERT INTO received_pix (end_to_end_id, txid, value, horario, raw, outcome, "
            "payment_id, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (end_to_end_id) DO NOTHING RETURNING end_to_end_id"
            "), event AS ("
            "INSERT INTO events (payment_id, type, status, at, data) "
            "SELECT $9::text, $10::text, $11::text, $12::bigint, $13::text FROM ledger "
            "RETURNING id"
            "), charge AS ("
            + (_SET_LAST_EVENT_FROM_EVENT if replaces is None else _SET_STATUS_FROM_EVENT)
            + ") SELECT id FROM event",
            *received_args(pix),
            *_event_args(event),
            *((charge.id,) if replaces is None else _status_args(charge, replaces)),
        )
        if row is None:
            return None
        return [_recorded(row["id"], event)]

    async def _insert_event(self, event: Event) -> RecordedEvent:
        row = await self.conn.fetchrow(
            "INSERT INTO events (payment_id, type, status, at, data) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            *_event_args(event),
        )
        assert row is not None
        return _recorded(row["id"], event)

    async def _update_charge(
        self, charge: Charge, replaces: Status | None, last_event_id: int
    ) -> None:
        self._written(charge.id)
        if replaces is not None:
            await self.conn.execute(
                "UPDATE charges SET last_event_id = $1, status = $2, paid_at = $3, "
                "end_to_end_id = $4 WHERE id = $5 AND status = $6",
                last_event_id,
                *_status_args(charge, replaces),
            )
        else:
            await self.conn.execute(
                "UPDATE charges SET last_event_id = $1 WHERE id = $2", last_event_id, charge.id
            )

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
