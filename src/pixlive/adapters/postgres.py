"""PostgreSQL through asyncpg: a pool for reads, a few writer connections with group commit.

Several writers run at once (PostgreSQL takes concurrent transactions, and its own WAL
group commit merges their fsyncs); row locks (`FOR UPDATE`) and unique keys keep the
races honest. Driver errors are translated here into our own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from pixlive.adapters.connection import Dialect
from pixlive.adapters.postgres_connection import (
    UNAVAILABLE,
    PostgresConnection,
    asyncpg_dsn,
    translate,
)
from pixlive.adapters.postgres_store import PostgresStore
from pixlive.adapters.repository import Repository
from pixlive.services.errors import DatabaseUnavailable


def _open(conn: Any) -> bool:
    """Open and in a transaction."""
    try:
        return not conn.is_closed() and bool(conn.is_in_transaction())
    except asyncpg.InterfaceError:
        return False


def _idle(conn: Any) -> bool:
    """Open, and in no transaction. A pooled connection that was lost has gone back to the
    pool on its own, and what we hold of it then refuses every call."""
    try:
        return not conn.is_closed() and not conn.is_in_transaction()
    except asyncpg.InterfaceError:
        return False


class PostgresWriteSession:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = PostgresConnection(conn)
        self.store = PostgresStore(self.conn)

    async def begin(self) -> None:
        await self.conn.execute("BEGIN")

    async def commit(self, *, alone: bool = False) -> None:
        await self.conn.execute("COMMIT")

    async def rollback(self) -> None:
        try:
            # Lost, or closed after a failure: the server rolled the transaction back.
            lost = self.conn.raw.is_closed()
            in_transaction = not lost and self.conn.raw.is_in_transaction()
        except asyncpg.InterfaceError as exc:  # the connection was lost (and detached)
            raise DatabaseUnavailable("PostgreSQL: the connection was lost") from exc
        if lost:
            raise DatabaseUnavailable("PostgreSQL: the connection was lost")
        if in_transaction:
            await self.conn.execute("ROLLBACK")


class PostgresDatabase:
    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, writers: int = 4, pool_size: int = 10) -> None:
        self.dsn = asyncpg_dsn(url)
        self.writers = writers
        self._pool_size = max(pool_size, writers + 2)
        self._pool: asyncpg.Pool | None = None
        self._connecting: asyncio.Future[asyncpg.Pool] | None = None
        # Writer connections between batches, kept out of the pool: giving one back would
        # cost a round trip (the pool's reset query) per batch.
        self._idle_writers: list[Any] = []

    async def _ensure_pool(self) -> asyncpg.Pool:
        # Created lazily so that a server started while PostgreSQL is down comes up,
        # answers 503, and recovers on its own once the database is back. The requests
        # that arrive while a pool is being opened share that one attempt and its outcome,
        # instead of each opening (and leaking) a pool of its own.
        if self._pool is not None:
            return self._pool
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open_pool())
            # retrieved here so that an attempt whose waiters all went away logs nothing
            self._connecting.add_done_callback(lambda f: f.cancelled() or f.exception())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None  # failed or done: the next call starts afresh

    async def _open_pool(self) -> asyncpg.Pool:
        try:
            pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self._pool_size,
                command_timeout=10,
                timeout=5,
                server_settings={"application_name": "pixlive"},
            )
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise translate(exc) from exc
        self._pool = pool
        return pool

    async def start(self) -> None:
        try:
            await self._ensure_pool()
        except DatabaseUnavailable:
            pass  # reported by /readyz and as 503s until it comes back

    async def close(self) -> None:
        if self._connecting is not None:  # let an attempt in flight finish, then close it
            await asyncio.wait([self._connecting])
            self._connecting = None
        while self._idle_writers:
            await self._release(self._idle_writers.pop())
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _acquire_connection(self) -> Any:
        pool = await self._ensure_pool()
        try:
            return await pool.acquire()
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise translate(exc) from exc

    async def _release(self, conn: Any) -> None:
        assert self._pool is not None
        try:
            await self._pool.release(conn)
        except (*UNAVAILABLE, asyncpg.PostgresError):
            conn.terminate()

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Any]:
        conn = await self._acquire_connection()
        try:
            yield conn
        finally:
            await self._release(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Repository]:
        async with self._acquire() as conn:
            yield Repository(PostgresConnection(conn))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresWriteSession]:
        conn = await self._writer_connection()
        reusable = False
        try:
            session = PostgresWriteSession(conn)
            await session.begin()
            try:
                yield session
            finally:
                if _open(conn):  # left without a commit: an error
                    try:
                        await session.rollback()
                    except DatabaseUnavailable:
                        pass
            reusable = _idle(conn)
        finally:
            if reusable:
                self._idle_writers.append(conn)
            else:  # lost, or interrupted: the pool resets or discards it
                await self._release(conn)

    async def _writer_connection(self) -> Any:
        while self._idle_writers:
            conn = self._idle_writers.pop()
            if _idle(conn):
                return conn
            await self._release(conn)
        conn = await self._acquire_connection()
        try:
            # The writers run the same few statements thousands of times: with the default
            # plan cache, PostgreSQL plans each execution of a parameterised statement
            # anew until it trusts a generic plan, and for the set-wise batch statement
            # that planning cost more than its execution. A plan is kept for the
            # connection's life, though, and one made while a table was small (a new
            # database) read it whole, every batch, as it grew. Every statement of the
            # writers finds its rows by an index, so sequential scans are ruled out for
            # them (measured: docs/performance-log.md, "a batch written set-wise").
            # The pool's reset (RESET ALL) undoes both when the connection goes back.
            await conn.execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
            await self._release(conn)
            raise translate(exc) from exc
        return conn

    async def tidy(self) -> None:
        """Nothing: PostgreSQL checkpoints in its own processes."""

    async def ping(self) -> bool:
        try:
            async with self.read() as reader:
                await reader.conn.fetchrow("SELECT 1")
            return True
        except DatabaseUnavailable:
            return False

    async def check_commit(self) -> None:
        # txid_current() makes the statement's transaction take an id, so its commit writes
        # (and flushes) a WAL record, as a payment's would; a standby refuses it.
        async with self.read() as reader:
            await reader.conn.fetchrow("SELECT txid_current()")
