"""SQLite: one writer connection with group commit, one reader connection, no thread hops
per statement.

A statement on a small indexed table takes microseconds, so it runs right on the event loop;
only BEGIN (which may wait for another process's lock) and COMMIT (which waits for the
fsync) go to the writer's own thread. While one batch is being fsynced, the next requests
queue up and are committed together: that is the group commit that DESIGN.md asks for.
WAL with synchronous=FULL: a committed batch survives a power cut.

Two exceptions, both for how soon a lone payment is heard of:
- A batch of one job, with nothing else queued, commits on the loop while recent COMMITs
  were quick: the loop has nothing else to do meanwhile, and the two thread hand-offs cost
  a good part of the fsync itself. A slow disk sends every COMMIT back to the thread.
- SQLite's automatic WAL checkpoint runs inside the COMMIT that crosses its threshold,
  copying pages and fsyncing the database file before that payment is answered. The
  writer checkpoints between batches instead (`tidy`), in its thread, once the callers are
  answered. (Measured: docs/performance-log.md, "a lone payment's path".)
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from pixlive.adapters.connection import Dialect
from pixlive.adapters.repository import Repository
from pixlive.adapters.sqlite_connection import (
    SqliteConnection,
    connect,
    sqlite_path,
    translate,
)
from pixlive.adapters.sqlite_store import SqliteStore
from pixlive.services.errors import DatabaseUnavailable

log = logging.getLogger("pixlive.sqlite")

# COMMIT on the loop only while the recent ones (an average, in seconds) took less than this
INLINE_COMMIT_LIMIT = 0.002
# A checkpoint between batches at most this often (seconds): often enough that the WAL
# stays as small as SQLite's own checkpoint kept it, and no checkpoint grows long enough
# to hold the next batches up (measured: docs/performance-log.md, "The WAL checkpoint
# between batches").
CHECKPOINT_EVERY = 0.02


class SqliteWriteSession:
    """The one write transaction at a time of the writer connection."""

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self.conn = SqliteConnection(conn)
        self.store = SqliteStore(self.conn)
        self._raw = conn
        self._executor = executor
        self.commit_seconds = 0.0  # a moving average of recent COMMITs, hand-offs included
        self.inline_commits = 0
        self.checkpoints = 0
        self._uncheckpointed = False  # a commit since the last checkpoint
        self._checkpointed_at = time.monotonic()

    async def _in_thread(self, sql: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._raw.execute, sql)
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    async def begin(self) -> None:
        # Without another process on the file the lock is free and BEGIN takes
        # microseconds: take it here, not waiting; only if it is held, wait in the thread.
        raw = self._raw
        raw.execute("PRAGMA busy_timeout=0")
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            raw.execute("PRAGMA busy_timeout=10000")
            await self._in_thread("BEGIN IMMEDIATE")
        else:
            raw.execute("PRAGMA busy_timeout=10000")

    async def commit(self, *, alone: bool = False) -> None:
        started = time.perf_counter()
        if alone and self.commit_seconds < INLINE_COMMIT_LIMIT:
            try:
                self._raw.execute("COMMIT")
            except sqlite3.Error as exc:
                raise translate(exc) from exc
            self.inline_commits += 1
        else:
            await self._in_thread("COMMIT")
        self.commit_seconds += (time.perf_counter() - started - self.commit_seconds) * 0.2
        self._uncheckpointed = True

    async def tidy(self) -> None:
        """Between batches: the WAL checkpoint, when one is due."""
        if not self._uncheckpointed:
            return
        now = time.monotonic()
        if now - self._checkpointed_at < CHECKPOINT_EVERY:
            return
        self._uncheckpointed = False
        self._checkpointed_at = now
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint)
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed: %s", translate(exc))
            return
        self.checkpoints += 1

    def _checkpoint(self) -> None:
        # PASSIVE: never waits for readers; what they still need is copied next time
        cursor = self._raw.execute("PRAGMA wal_checkpoint(PASSIVE)")
        # Its row read and the cursor closed, or the statement stays in progress on the
        # connection until the cursor is collected, and a COMMIT meanwhile fails.
        cursor.fetchall()
        cursor.close()

    async def rollback(self) -> None:
        if self._raw.in_transaction:
            await self._in_thread("ROLLBACK")


class SqliteDatabase:
    """Reads on a connection of their own (WAL lets them run beside the writer)."""

    dialect: Dialect = "sqlite"
    writers = 1  # SQLite has one writer; more would only queue on its lock

    def __init__(self, url: str) -> None:
        self.path = sqlite_path(url)
        self._writer: sqlite3.Connection | None = None
        self._reader: Repository | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pixlive-sqlite-writer")
        self._session: SqliteWriteSession | None = None

    async def start(self) -> None:
        self._writer = connect(self.path)
        self._writer.execute("PRAGMA wal_autocheckpoint=0")  # see `tidy`
        self._session = SqliteWriteSession(self._writer, self._executor)
        # An in-memory database is private to its connection, so tests with ":memory:"
        # read through the writer's connection.
        if self.path == ":memory:":
            self._reader = Repository(SqliteConnection(self._writer))
        else:
            reader = connect(self.path)
            reader.execute("PRAGMA query_only=ON")
            self._reader = Repository(SqliteConnection(reader))

    async def close(self) -> None:
        self._executor.shutdown(wait=True)  # a checkpoint may still be running there
        if self._reader is not None:
            reader = self._reader.conn
            assert isinstance(reader, SqliteConnection)
            if reader.raw is not self._writer:
                reader.raw.close()
        if self._writer is not None:
            self._writer.close()
        self._writer = self._reader = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Repository]:
        assert self._reader is not None, "database not started"
        yield self._reader

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteWriteSession]:
        session = self._session
        assert session is not None, "database not started"
        await session.begin()
        try:
            yield session
        finally:
            if session.conn.raw.in_transaction:  # left without a commit: an error
                try:
                    await session.rollback()
                except DatabaseUnavailable:
                    pass

    async def tidy(self) -> None:
        if self._session is not None and self.path != ":memory:":
            await self._session.tidy()

    async def ping(self) -> bool:
        try:
            async with self.read() as reader:
                await reader.conn.fetchrow("SELECT 1")
            return True
        except DatabaseUnavailable:
            return False

    async def check_commit(self) -> None:
        if self.path == ":memory:":
            return  # private to the writer's connection: nothing else can write it
        try:
            await asyncio.to_thread(commit_probe, self.path)
        except sqlite3.Error as exc:
            raise translate(exc) from exc


def commit_probe(path: str) -> None:
    # A connection of its own, so the probe never enters the writer's transaction. Setting
    # the header's user_version (unused by pixlive and Alembic) to its own value writes a
    # page and commits it like any payment: WAL frame, fsync.
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA user_version={version}")
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
    finally:
        conn.close()
