"""Fixtures for the persistence and service tests: a migrated database on SQLite (a temp
file) and on the real PostgreSQL (a fresh database per test), with a started
`Writer` whose `on_commit` collects what it publishes.

Every test that asks for `db_url` or `stack` runs once per backend. More "processes" on the
same database come from `open_stack`: each is a separate Database + Writer.

The helpers below are imported by the test modules as `itest` (this folder is no package,
and every such conftest.py would otherwise be the one module named "conftest").
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pixlive.adapters.database import Database, database_from_url
from pixlive.adapters.migrate import upgrade
from pixlive.adapters.postgres import PostgresDatabase
from pixlive.adapters.repository import Repository
from pixlive.domain.events import RecordedEvent
from pixlive.services.charges import NewCharge, Receiver, create_charge
from pixlive.services.confirmation import IncomingPix, Outcome, confirm
from pixlive.services.records import ReceivedPix
from pixlive.services.unit_of_work import Job, UnitOfWork, jobs
from pixlive.services.writer import Writer

T = TypeVar("T")
sys.modules["itest"] = sys.modules[__name__]

BACKENDS = ["sqlite", "postgresql"]
WAIT = 20.0  # seconds: every wait on the database is bounded, so a hang fails instead

RECEIVER = Receiver(pix_key="loja@example.com", name="Loja Exemplo", city="Sao Paulo")
# A fixed, millisecond-precise clock: times survive the round trip through the database.
T0 = datetime(2026, 11, 28, 12, 0, 0, 123000, tzinfo=UTC)
_ALNUM = string.ascii_letters + string.digits


def new_e2e() -> str:
    """An endToEndId as the Banco Central makes them: "E" and 31 alphanumerics."""
    return "E" + "".join(secrets.choice(_ALNUM) for _ in range(31))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def pix_for(
    txid: str | None, value: int, *, e2e: str | None = None, when: datetime = T0
) -> IncomingPix:
    e2e = e2e or new_e2e()
    horario = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    raw: dict[str, Any] = {
        "endToEndId": e2e,
        "txid": txid,
        "valor": f"{value // 100}.{value % 100:02d}",
        "horario": horario,
    }
    return IncomingPix(end_to_end_id=e2e, txid=txid, value=value, horario=when, raw=raw)


async def confirm_in(uow: UnitOfWork, pix: IncomingPix, now: datetime = T0) -> Outcome:
    """Confirms one Pix inside a job, beside the job's other writes."""
    done = await confirm(uow.repo, [[pix]], now)  # type: ignore[arg-type]
    uow.events.extend(done.events)
    (outcomes,) = done.results
    assert isinstance(outcomes, list)
    return outcomes[0]


async def count_received(uow: UnitOfWork) -> int:
    conn = uow.repo.conn  # type: ignore[attr-defined]
    row = await conn.fetchrow("SELECT COUNT(*) FROM received_pix")
    return int(row[0])


async def received(repo: Repository, end_to_end_id: str) -> ReceivedPix | None:
    """The ledger's row of this endToEndId."""
    row = await repo.conn.fetchrow(
        "SELECT end_to_end_id, txid, value, horario, raw, outcome, payment_id, "
        "received_at FROM received_pix WHERE end_to_end_id = $1",
        end_to_end_id,
    )
    if row is None:
        return None
    return ReceivedPix(
        end_to_end_id=row[0],
        txid=row[1],
        value=row[2],
        horario=row[3],
        raw=json.loads(row[4]),
        outcome=row[5],
        payment_id=row[6],
        received_at=datetime.fromtimestamp(row[7] / 1000, tz=UTC),
    )


class Clock:
    """A stack's time: T0 until a test sets another."""

    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


class Gate:
    """A job that holds its batch open until released, so that the next jobs queue up and
    are committed together in the next batch."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, uow: UnitOfWork) -> None:
        self.entered.set()
        await self.release.wait()


class Stack:
    """One "process": a started database, and a started group-commit writer on it."""

    def __init__(self, url: str, db: Database) -> None:
        self.url = url
        self.db = db
        self.clock = Clock()
        self.published: list[RecordedEvent] = []
        self.publications = 0
        self.writer = Writer(db, self.clock, self._on_commit)

    def _on_commit(self, events: list[RecordedEvent]) -> None:
        self.publications += 1
        self.published.extend(events)

    async def run(self, job: Job[T]) -> T:
        return await asyncio.wait_for(self.writer.run(jobs, job), WAIT)

    async def read(self, query: Callable[[Repository], Awaitable[T]]) -> T:
        async with self.db.read() as repo:
            return await query(repo)

    async def scalar(self, sql: str, *args: object) -> Any:
        async with self.db.read() as repo:
            row = await repo.conn.fetchrow(sql, *args)
        assert row is not None
        return row[0]

    async def count(self, table: str, where: str = "", *args: object) -> int:
        sql = f"SELECT COUNT(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return int(await self.scalar(sql, *args))

    async def events(self, payment_id: str) -> list[RecordedEvent]:
        return await self.read(lambda repo: repo.events_after(payment_id, 0, 10_000))

    async def new_charge(
        self, value: int = 1234, *, expires_in: int = 3600, now: datetime = T0, **extra: Any
    ) -> Any:
        charge, _ = await self.run(
            lambda uow: create_charge(
                uow, NewCharge(value=value, expires_in=expires_in, **extra), RECEIVER, now
            )
        )
        return charge

    async def confirm(self, pix: IncomingPix, now: datetime | None = None) -> Outcome:
        """As the webhook runs it: a delivery of one Pix, at `now` (else the stack's time)."""
        if now is not None:
            self.clock.at = now
        (outcome,) = await asyncio.wait_for(self.writer.run(confirm, [pix]), WAIT)
        return outcome

    async def received(self, end_to_end_id: str) -> ReceivedPix | None:
        return await self.read(lambda repo: received(repo, end_to_end_id))


def make_database(url: str, *, writers: int | None = None) -> Database:
    if url.startswith("postgresql") and writers is not None:
        return PostgresDatabase(url, writers=writers, pool_size=writers + 2)
    if url.startswith("postgresql"):
        return PostgresDatabase(url, pool_size=6)  # several stacks share max_connections
    return database_from_url(url)


async def start_stack(url: str, *, writers: int | None = None) -> Stack:
    db = make_database(url, writers=writers)
    await db.start()
    stack = Stack(url, db)
    await stack.writer.start()
    return stack


async def stop_stack(stack: Stack) -> None:
    await asyncio.wait_for(stack.writer.close(), WAIT)
    await asyncio.wait_for(stack.db.close(), WAIT)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database with no tables yet: a new SQLite file, or a fresh PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'pixlive.db'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def db_url(empty_url: str) -> str:
    """The same, migrated to the newest revision, as `pixlive migrate` does it."""
    upgrade(empty_url)
    return empty_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For what only SQLite has: a migrated temp file."""
    url = f"sqlite:///{tmp_path / 'pixlive.db'}"
    upgrade(url)
    return url


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """For what only PostgreSQL has: a fresh, migrated database."""
    upgrade(pg_database)
    return pg_database


@pytest.fixture
async def open_stack(db_url: str) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    """Opens more "processes" on the test's database; all are closed afterwards."""
    opened: list[Stack] = []

    async def open_(*, writers: int | None = None) -> Stack:
        stack = await start_stack(db_url, writers=writers)
        opened.append(stack)
        return stack

    yield open_
    for stack in reversed(opened):
        await stop_stack(stack)


@pytest.fixture
async def stack(open_stack: Callable[..., Awaitable[Stack]]) -> Stack:
    return await open_stack()


async def start_stop(url: str, job: Callable[[Stack], Awaitable[T]]) -> T:
    """Runs `job` on a stack of its own, opened and closed around it (for sync tests)."""
    stack = await start_stack(url)
    try:
        return await job(stack)
    finally:
        await stop_stack(stack)
