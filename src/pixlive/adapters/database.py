"""What the services need of a database, and the choice of one by URL."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Generic, Protocol, TypeVar

from pixlive.adapters.connection import Connection, Dialect


class WriteSession(Protocol):
    @property
    def conn(self) -> Connection: ...

    async def begin(self) -> None: ...
    async def commit(self, *, alone: bool = False) -> None:
        """`alone`: the batch is one job and no other waits for the writer."""

    async def rollback(self) -> None: ...
    async def savepoint(self) -> None: ...
    async def release(self) -> None: ...
    async def rollback_savepoint(self) -> None: ...


class Database(Protocol):
    dialect: Dialect
    writers: int

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def read(self) -> AbstractAsyncContextManager[Connection]: ...
    def write_session(self) -> AbstractAsyncContextManager[WriteSession]: ...
    async def ping(self) -> bool: ...
    async def check_commit(self) -> None:
        """Commits a real (empty-handed) write transaction, durably, beside the writers;
        raises DatabaseUnavailable when that fails: a full disk or a read-only file lets
        reads through, and only a commit shows that payments can be written."""

    async def tidy(self) -> None:
        """Called by a writer between its batches, with no transaction open: upkeep that
        the database would otherwise do inside a COMMIT."""


C = TypeVar("C", bound=Connection)


class Savepoints(Generic[C]):
    """The savepoint around each use case of a group-committed batch: the same SQL on
    SQLite and PostgreSQL."""

    conn: C

    async def savepoint(self) -> None:
        await self.conn.execute("SAVEPOINT job")

    async def release(self) -> None:
        await self.conn.execute("RELEASE SAVEPOINT job")

    async def rollback_savepoint(self) -> None:
        await self.conn.execute("ROLLBACK TO SAVEPOINT job")
        await self.conn.execute("RELEASE SAVEPOINT job")


def database_from_url(url: str) -> Database:
    if url.startswith("sqlite"):
        from pixlive.adapters.sqlite import SqliteDatabase

        return SqliteDatabase(url)
    if url.startswith(("postgresql", "postgres")):
        from pixlive.adapters.postgres import PostgresDatabase

        return PostgresDatabase(url)
    raise ValueError(
        "PIXLIVE_DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
    )
