"""Set-wise writes for a group-committed batch of Pix confirmations.

Per statement, the Python side of a database call (and on PostgreSQL a round trip, a socket
send and an event-loop wake-up) costs more than the work of the statement itself. So a batch
whose jobs all named the charges they will change is first run like this: its charges are
read (and locked, on PostgreSQL) in one statement; the use cases then run as pure domain
work against those rows, `record_pix` only noting what it would write; and at the end the
batch's ledger rows, events and charge updates are written together: one statement on
PostgreSQL, a few `executemany` on SQLite, instead of one statement (PostgreSQL) or four
(SQLite) per confirmation.

What this pass cannot know beforehand, it checks when writing, and the batch is then run
again the ordinary way (statement by statement), which decides every case as before:

- an endToEndId already in the ledger (a retried delivery): the ordinary run answers it
  DUPLICATE (it also changes what later jobs of the batch see); SQLite finds it before
  writing anything, PostgreSQL by the insert's conflict check, after which the batch is
  rolled back;
- a ledger row inserted meanwhile by another process, or a value the database refuses:
  the counts disagree or the statement fails, and the transaction is rolled back;
- a use case that asks for anything else (another table, a charge it did not name):
  `NotDeferred` is raised at that call, before anything was written.

The event ids come from the database only when the batch is written; until then the
`RecordedEvent`s that `record_pix` returns carry a placeholder id (negative), and the
writer hands out the real ones (`resolve`) before anyone sees them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import NoReturn

import orjson

from pixlive.adapters.connection import Connection, Dialect, Row
from pixlive.adapters.repository import (
    CHARGE_COLUMNS,
    ReceivedPix,
    Repository,
    charge_from_row,
    from_ms,
    received_args,
    to_ms,
)
from pixlive.adapters.sqlite import SqliteConnection
from pixlive.domain.charge import Charge, Status
from pixlive.domain.events import Event, RecordedEvent


class NotDeferred(Exception):
    """A use case asked a set-wise batch for something it does not defer; the batch is run
    again the ordinary way (nothing was written yet)."""


class Written(Enum):
    ALL = "all"  # every write as the use cases assumed: their results stand
    NOTHING = "nothing"  # an endToEndId was already in the ledger; nothing was written (SQLite)
    SOME = "some"  # written in part (a race with another process): roll back


@dataclass(slots=True)
class _State:
    """A charge the batch read: its row as read, and the columns the batch wrote so far."""

    row: Row
    read_status: Status
    status: Status
    paid_at: datetime | None
    end_to_end_id: str | None
    last_event_id: int
    last_event: int = 0  # position + 1 in the batch's events of its last one; 0: none

    def charge(self) -> Charge:
        charge = charge_from_row(self.row)
        if self.last_event:
            charge.status, charge.paid_at = self.status, self.paid_at
            charge.end_to_end_id, charge.last_event_id = self.end_to_end_id, self.last_event_id
        return charge


class SetWiseBatch:
    def __init__(self, conn: Connection, rows: dict[str, Row], named: Collection[str]) -> None:
        self.conn = conn
        self.rows = rows  # never changed: the ordinary run may start again from them
        self._named = frozenset(named)
        self._charges: dict[str, _State] = {}
        self._ledger: list[tuple[object, ...]] = []
        self._end_to_end_ids: set[str] = set()
        self._events: list[tuple[str, str, str, int, str]] = []
        self._recorded: list[RecordedEvent] = []
        self.refused = False  # a job asked for what is not deferred (even if it caught it)
        self._ids: list[int] = []

    @classmethod
    async def read(cls, conn: Connection, charge_ids: Collection[str]) -> SetWiseBatch:
        """The batch's charges, read (and on PostgreSQL locked) in one statement."""
        ids = sorted(set(charge_ids))
        if conn.dialect == "postgresql":
            # In id order, as every batch does, so that two batches never wait on each
            # other in a cycle over the same charges.
            rows = await conn.fetch(
                f"SELECT {CHARGE_COLUMNS} FROM charges WHERE id = ANY($1::text[]) "
                "ORDER BY id FOR UPDATE",
                ids,
            )
        else:  # the transaction already holds SQLite's one write lock
            rows = await conn.fetch(
                f"SELECT {CHARGE_COLUMNS} FROM charges "
                "WHERE id IN (SELECT value FROM json_each($1))",
                orjson.dumps(ids).decode(),
            )
        return cls(conn, {row["id"]: row for row in rows}, ids)

    def repository(self) -> Repository:
        return _BatchRepository(self)

    # what the use cases call, through _BatchRepository ---------------------------------

    def refuse(self, what: str) -> NoReturn:
        self.refused = True
        raise NotDeferred(what)

    def get_charge(self, charge_id: str) -> Charge | None:
        # A new Charge each time, as a read from the database gives: the use case changes
        # it before recording, and may then be told DUPLICATE.
        state = self._charges.get(charge_id)
        if state is not None:
            return state.charge()
        if charge_id not in self._named:
            self.refuse("a charge the job did not name")
        row = self.rows.get(charge_id)
        if row is None:  # named, but no such charge: the read said so
            return None
        charge = charge_from_row(row)
        self._charges[charge_id] = _State(
            row,
            charge.status,
            charge.status,
            charge.paid_at,
            charge.end_to_end_id,
            charge.last_event_id,
        )
        return charge

    def record_pix(
        self,
        pix: ReceivedPix,
        charge: Charge | None,
        replaces: Status | None,
        events: Sequence[Event],
    ) -> list[RecordedEvent] | None:
        state = None
        if charge is not None:
            state = self._charges.get(charge.id)
            if state is None:  # a charge that did not come from this batch
                self.refuse("a charge the batch did not read")
        if pix.end_to_end_id in self._end_to_end_ids:
            return None  # as the ledger's unique key would answer, a moment later
        self._end_to_end_ids.add(pix.end_to_end_id)
        self._ledger.append(received_args(pix))
        recorded = [self._add_event(event) for event in events]
        # As record_pix's UPDATE: the status columns only over `replaces`; nothing at all
        # when the charge no longer has it.
        if state is not None and recorded and (replaces is None or state.status is replaces):
            if replaces is not None:
                assert charge is not None
                state.status, state.paid_at = charge.status, charge.paid_at
                state.end_to_end_id = charge.end_to_end_id
            state.last_event_id = recorded[-1].id
            state.last_event = len(self._events)
        return recorded

    def _add_event(self, event: Event) -> RecordedEvent:
        at = to_ms(event.at)
        status = str(event.status)
        self._events.append(
            (event.payment_id, event.type, status, at, orjson.dumps(event.data).decode())
        )
        recorded = RecordedEvent(
            id=-len(self._events),  # a placeholder until written: see resolve
            type=event.type,
            payment_id=event.payment_id,
            status=status,
            at=from_ms(at),
            data=event.data,
        )
        self._recorded.append(recorded)
        return recorded

    # what the writer calls ---------------------------------------------------------------

    def resolve(self, events: list[RecordedEvent]) -> list[RecordedEvent]:
        """The job's events with the ids the database gave them."""
        out = []
        for event in events:
            if event.id < 0:
                placeholder = self._recorded[-event.id - 1]
                event = RecordedEvent(
                    id=self._ids[-event.id - 1],
                    type=placeholder.type,
                    payment_id=placeholder.payment_id,
                    status=placeholder.status,
                    at=placeholder.at,
                    data=placeholder.data,
                )
            out.append(event)
        return out

    def _updates(self) -> list[_State]:
        return [state for state in self._charges.values() if state.last_event]

    async def write(self) -> Written:
        """Writes what the batch's use cases recorded, if the ledger agrees."""
        if isinstance(self.conn, SqliteConnection):
            return await self._write_sqlite(self.conn)
        return await self._write_postgres()

    async def _write_postgres(self) -> Written:
        updates = self._updates()
        # Three JSON documents rather than 19 arrays: asyncpg checks every array element
        # for nesting (an ABC isinstance each), which costs more than orjson's encoding.
        # The ledger in endToEndId order: two transactions inserting the same ids then
        # take their unique-index locks in one order, never waiting on each other in a
        # cycle.
        row = await self.conn.fetchrow(
            _POSTGRES_WRITE,
            orjson.dumps(sorted(self._ledger, key=_first)).decode(),
            orjson.dumps(self._events).decode(),
            orjson.dumps(
                [
                    (
                        s.row["id"],
                        s.status.value,
                        to_ms(s.paid_at) if s.paid_at else None,
                        s.end_to_end_id,
                        s.last_event,
                    )
                    for s in updates
                ]
            ).decode(),
            len(self._events),
        )
        assert row is not None
        self._ids = list(row["ids"] or ())
        if (row["ledger"], row["events"], row["charges"], len(self._ids)) != (
            len(self._ledger),
            len(self._events),
            len(updates),
            len(self._events),
        ):
            return Written.SOME
        return Written.ALL

    async def _write_sqlite(self, conn: SqliteConnection) -> Written:
        # The transaction holds SQLite's write lock: no one else writes between these.
        known = await conn.fetchrow(
            "SELECT 1 FROM received_pix WHERE end_to_end_id IN (SELECT value FROM json_each($1))",
            orjson.dumps([args[0] for args in self._ledger]).decode(),
        )
        if known is not None:
            return Written.NOTHING
        added = conn.executemany(
            "INSERT INTO received_pix (end_to_end_id, txid, value, horario, raw, outcome, "
            "payment_id, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (end_to_end_id) DO NOTHING",
            self._ledger,
        )
        if added != len(self._ledger):
            return Written.SOME
        if self._events:
            # The ids SQLite would give (its rowid: one more than the largest), given here
            # so that executemany needs no RETURNING.
            row = await conn.fetchrow("SELECT COALESCE(MAX(id), 0) FROM events")
            assert row is not None
            first = int(row[0]) + 1
            self._ids = list(range(first, first + len(self._events)))
            conn.executemany(
                "INSERT INTO events (id, payment_id, type, status, at, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(event_id, *args) for event_id, args in zip(self._ids, self._events, strict=True)],
            )
        updates = self._updates()
        changed = conn.executemany(
            "UPDATE charges SET status = ?, paid_at = ?, end_to_end_id = ?, last_event_id = ? "
            "WHERE id = ? AND status = ?",
            [
                (
                    s.status.value,
                    to_ms(s.paid_at) if s.paid_at else None,
                    s.end_to_end_id,
                    self._ids[s.last_event - 1],
                    s.row["id"],
                    s.read_status.value,
                )
                for s in updates
            ],
        )
        return Written.ALL if changed == len(updates) else Written.SOME


# One statement for the whole batch. The event ids are taken from the sequence and handed
# out in order (`ids`), so that a charge's events keep the order its use cases recorded them
# in, and its last one is the charge's last_event_id. An endToEndId already in the ledger (a
# retried delivery, or a row another transaction committed meanwhile) is caught by the
# insert's conflict check on the unique index and shows as a smaller count: the writer
# rolls the batch back and runs it the ordinary way. The ledger is not probed beforehand:
# such a probe is a join whose plan, made while the table was new and had no statistics,
# scanned the whole ledger for every batch (the rate fell from 1,951 to 1,142/s over five
# runs of one server), and retries are rare enough that a rollback is the cheaper price.
# Likewise the charges are updated by id alone, with no `status = <as read>` guard: the
# batch read them FOR UPDATE, so no one else can have changed them, and with the guard a
# plan made while the table was small walked the status index (every ACTIVE charge) for
# each one.
_POSTGRES_WRITE = (
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
    "UPDATE charges SET status = u.x->>1, paid_at = (u.x->>2)::bigint, "
    "end_to_end_id = u.x->>3, last_event_id = ids.id "
    "FROM json_array_elements($3::json) AS u(x) JOIN ids ON ids.n = (u.x->>4)::bigint "
    "WHERE charges.id = u.x->>0 RETURNING 1"
    ") SELECT (SELECT count(*) FROM ledger) AS ledger, "
    "(SELECT count(*) FROM event) AS events, (SELECT count(*) FROM charge) AS charges, "
    "(SELECT array_agg(id ORDER BY n) FROM ids) AS ids"
)


def _first(row: tuple[object, ...]) -> str:
    return str(row[0])


class _Refusing:
    """The connection of a set-wise batch's repository: any statement a use case would
    run is one the batch does not defer."""

    def __init__(self, batch: SetWiseBatch, dialect: Dialect) -> None:
        self._batch = batch
        self.dialect: Dialect = dialect

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        self._batch.refuse(sql)

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        self._batch.refuse(sql)

    async def execute(self, sql: str, *args: object) -> int:
        self._batch.refuse(sql)


class _BatchRepository(Repository):
    """The repository of a use case in a set-wise batch: charges from the batch's read,
    Pix recorded into the batch; anything else raises NotDeferred."""

    def __init__(self, batch: SetWiseBatch) -> None:
        super().__init__(_Refusing(batch, batch.conn.dialect))
        self._batch = batch

    async def get_charge(self, charge_id: str, *, for_update: bool = False) -> Charge | None:
        return self._batch.get_charge(charge_id)

    async def record_pix(
        self,
        pix: ReceivedPix,
        charge: Charge | None = None,
        *,
        replaces: Status | None = None,
        events: Sequence[Event] = (),
    ) -> list[RecordedEvent] | None:
        return self._batch.record_pix(pix, charge, replaces, events)
