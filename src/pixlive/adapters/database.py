"""The database as the composition root starts it, and the choice of one by URL.

A `Database` is the service layer's `Transactions` port (services/ports.py: the writer's
transactions, each with its dialect's `Store`), plus reads (`read`: the `Queries` port) and
the process's start, stop and readiness check.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from pixlive.adapters.connection import Dialect
from pixlive.adapters.repository import Repository
from pixlive.services.ports import Transaction


class Database(Protocol):
    dialect: Dialect

    @property
    def writers(self) -> int: ...

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def read(self) -> AbstractAsyncContextManager[Repository]: ...
    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...
    async def ping(self) -> bool: ...
    async def check_commit(self) -> None:
        """Commits a real (empty-handed) write transaction, durably, beside the writers;
        raises DatabaseUnavailable when that fails: a full disk or a read-only file lets
        reads through, and only a commit shows that payments can be written."""

    async def tidy(self) -> None:
        """Called by a writer between its batches, with no transaction open: upkeep that
        the database would otherwise do inside a COMMIT."""


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
