"""One sweeper at a time across processes: a PostgreSQL session advisory lock, held on one
pooled connection for the whole sweep. SQLite serves one process, which needs no lock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pixlive.adapters.database import Database

# An arbitrary constant that names the reconciliation sweep among advisory locks.
RECONCILE_LOCK = 0x7078_6C69_7665_0001


@asynccontextmanager
async def sweep_lock(db: Database, key: int = RECONCILE_LOCK) -> AsyncIterator[bool]:
    """Yields whether this process holds the lock (False: another one is sweeping)."""
    async with db.read() as repo:
        conn = repo.conn
        if conn.dialect != "postgresql":
            yield True
            return
        row = await conn.fetchrow("SELECT pg_try_advisory_lock($1) AS held", key)
        held = bool(row and row["held"])
        try:
            yield held
        finally:
            if held:
                await conn.execute("SELECT pg_advisory_unlock($1)", key)
