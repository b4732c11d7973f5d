"""The confirmation store on PostgreSQL: a batch in three statements, whatever its size.

The charges are read `FOR UPDATE` in id order (two batches never wait on each other in a
cycle), the ledger is probed by its unique index, and the decisions are written in one
statement whose lists travel as JSON documents (cheaper for asyncpg to encode than arrays,
whose every element it inspects).
"""

from __future__ import annotations

from collections.abc import Collection

import orjson

from pixlive.adapters.postgres_connection import PostgresConnection
from pixlive.adapters.repository import (
    CHARGE_COLUMNS,
    Repository,
    charge_from_row,
    event_args,
    received_args,
    recorded_event,
    to_ms,
)
from pixlive.domain.charge import Charge
from pixlive.domain.events import RecordedEvent
from pixlive.services.errors import TransientConflict
from pixlive.services.records import Writes

_LOCK = f"SELECT {CHARGE_COLUMNS} FROM charges WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
_KNOWN = "SELECT end_to_end_id FROM received_pix WHERE end_to_end_id = ANY($1::text[])"

# The event ids are taken from the sequence first and handed out in the events' order
# (`ids`), so that a charge's last event is its last_event_id. The ledger goes in
# endToEndId order: two transactions inserting the same ids take their unique-index locks
# in one order. A row another transaction added since the probe is skipped by ON CONFLICT
# and shows as a smaller count. The charges are updated by id alone: the batch holds them
# locked since it read them.
_WRITE = (
    "WITH ids AS MATERIALIZED ("
    "SELECT row_number() OVER (ORDER BY id) AS n, id FROM ("
    "SELECT nextval(pg_get_serial_sequence('events', 'id')) AS id "
    "FROM generate_series(1, $4::int)"
    ") AS allocated"
    "), ledger AS ("
    "INSERT INTO received_pix (end_to_end_id, txid, value, horario, raw, outcome, "
    "payment_id, received_at) "
    "SELECT x->>0, x->>1, (x->>2)::bigint, x->>3, x->>4, x->>5, x->>6, (x->>7)::bigint "
    "FROM json_array_elements($1::json) AS x "
    "ON CONFLICT (end_to_end_id) DO NOTHING RETURNING 1"
    "), event AS ("
    "INSERT INTO events (id, payment_id, type, status, at, data) "
    "SELECT ids.id, e.x->>0, e.x->>1, e.x->>2, (e.x->>3)::bigint, e.x->>4 "
    "FROM json_array_elements($2::json) WITH ORDINALITY AS e(x, n) JOIN ids ON ids.n = e.n "
    "RETURNING 1"
    "), charge AS ("
    "UPDATE charges SET last_event_id = ids.id, "
    "status = COALESCE(u.x->>1, charges.status), "
    "paid_at = CASE WHEN u.x->>1 IS NULL THEN charges.paid_at ELSE (u.x->>2)::bigint END, "
    "end_to_end_id = CASE WHEN u.x->>1 IS NULL THEN charges.end_to_end_id ELSE u.x->>3 END "
    "FROM json_array_elements($3::json) AS u(x) JOIN ids ON ids.n = (u.x->>4)::bigint "
    "WHERE charges.id = u.x->>0 RETURNING 1"
    ") SELECT (SELECT count(*) FROM ledger) AS ledger, "
    "(SELECT array_agg(id ORDER BY n) FROM ids) AS ids"
)


class PostgresStore(Repository):
    def __init__(self, conn: PostgresConnection) -> None:
        super().__init__(conn)

    async def lock_charges(self, charge_ids: Collection[str]) -> dict[str, Charge]:
        rows = await self.conn.fetch(_LOCK, sorted(charge_ids))
        return {row[0]: charge_from_row(row) for row in rows}

    async def known_end_to_end_ids(self, end_to_end_ids: Collection[str]) -> set[str]:
        rows = await self.conn.fetch(_KNOWN, list(end_to_end_ids))
        return {row[0] for row in rows}

    async def write(self, writes: Writes) -> list[RecordedEvent]:
        # Each charge with events: its id, its new status columns (or none), and the
        # position (from 1) of its last event in the batch.
        last = {event.payment_id: n for n, event in enumerate(writes.events, 1)}
        changes = {change.payment_id: change for change in writes.changes}
        updates: list[tuple[object, ...]] = []
        for payment_id, n in last.items():
            change = changes.get(payment_id)
            if change is None:
                updates.append((payment_id, None, None, None, n))
            else:
                paid_at = to_ms(change.paid_at) if change.paid_at is not None else None
                updates.append((payment_id, change.after.value, paid_at, change.end_to_end_id, n))
        ledger = sorted((received_args(pix) for pix in writes.ledger), key=_first)
        row = await self.conn.fetchrow(
            _WRITE,
            orjson.dumps(ledger).decode(),
            orjson.dumps([event_args(event) for event in writes.events]).decode(),
            orjson.dumps(updates).decode(),
            len(writes.events),
        )
        assert row is not None
        if row["ledger"] != len(ledger):
            raise TransientConflict("another transaction recorded one of these endToEndIds")
        ids = row["ids"] or ()
        return [recorded_event(n, e) for n, e in zip(ids, writes.events, strict=True)]


def _first(row: tuple[object, ...]) -> str:
    return str(row[0])
