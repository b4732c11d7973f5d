"""The confirmation store on SQLite: a batch's reads and writes in a few set-wise statements.

The transaction holds SQLite's one write lock from its BEGIN IMMEDIATE, so the charges and
the ledger read here cannot change before the COMMIT: reading them is locking them.
Statements run on the event loop (each takes microseconds); lists travel as one JSON
argument, unpacked by `json_each` in C, or through `executemany`, which loops in C.
"""

from __future__ import annotations

from collections.abc import Collection

import orjson

from pixlive.adapters.repository import (
    CHARGE_COLUMNS,
    Repository,
    charge_from_row,
    event_args,
    received_args,
    recorded_event,
    to_ms,
)
from pixlive.adapters.sqlite_connection import SqliteConnection
from pixlive.domain.charge import Charge
from pixlive.domain.events import RecordedEvent
from pixlive.services.records import Writes

_INSERT_LEDGER = (
    "INSERT INTO received_pix (end_to_end_id, txid, value, horario, raw, outcome, "
    "payment_id, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# Each new rowid is one more than the largest, so in one statement the ids rise in the
# order of the rows inserted, which ORDER BY makes the events' order.
_INSERT_EVENTS = (
    "INSERT INTO events (payment_id, type, status, at, data) "
    "SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 "
    "FROM json_each(?) ORDER BY key RETURNING id"
)
# A charge whose status did not change (a mismatch) gets only its last event's id.
_UPDATE_CHARGE = (
    "UPDATE charges SET last_event_id = ?1, status = COALESCE(?2, status), "
    "paid_at = CASE WHEN ?2 IS NULL THEN paid_at ELSE ?3 END, "
    "end_to_end_id = CASE WHEN ?2 IS NULL THEN end_to_end_id ELSE ?4 END "
    "WHERE id = ?5"
)


class SqliteStore(Repository):
    def __init__(self, conn: SqliteConnection) -> None:
        super().__init__(conn)
        self.sqlite = conn

    async def lock_charges(self, charge_ids: Collection[str]) -> dict[str, Charge]:
        rows = await self.conn.fetch(
            f"SELECT {CHARGE_COLUMNS} FROM charges WHERE id IN (SELECT value FROM json_each($1))",
            orjson.dumps(list(charge_ids)).decode(),
        )
        return {row[0]: charge_from_row(row) for row in rows}

    async def known_end_to_end_ids(self, end_to_end_ids: Collection[str]) -> set[str]:
        rows = await self.conn.fetch(
            "SELECT end_to_end_id FROM received_pix "
            "WHERE end_to_end_id IN (SELECT value FROM json_each($1))",
            orjson.dumps(list(end_to_end_ids)).decode(),
        )
        return {row[0] for row in rows}

    async def write(self, writes: Writes) -> list[RecordedEvent]:
        conn = self.sqlite
        conn.executemany(_INSERT_LEDGER, [received_args(pix) for pix in writes.ledger])
        if not writes.events:
            return []
        rows = await conn.fetch(
            _INSERT_EVENTS, orjson.dumps([event_args(e) for e in writes.events]).decode()
        )
        ids = sorted(row[0] for row in rows)
        recorded = [recorded_event(n, e) for n, e in zip(ids, writes.events, strict=True)]
        last = {event.payment_id: event.id for event in recorded}
        changes = {change.payment_id: change for change in writes.changes}
        updates: list[tuple[object, ...]] = []
        for payment_id, event_id in last.items():
            change = changes.get(payment_id)
            if change is None:
                updates.append((event_id, None, None, None, payment_id))
            else:
                paid_at = to_ms(change.paid_at) if change.paid_at is not None else None
                updates.append(
                    (event_id, change.after.value, paid_at, change.end_to_end_id, payment_id)
                )
        conn.executemany(_UPDATE_CHARGE, updates)
        return recorded
