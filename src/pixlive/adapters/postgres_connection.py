"""The PostgreSQL connection through asyncpg, its errors translated to ours."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from pixlive.adapters.connection import Connection, Dialect, Row
from pixlive.services.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidData,
    TransientConflict,
)

UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)


def asyncpg_dsn(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgres+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def translate(exc: BaseException) -> Exception:
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict(str(exc))
    if isinstance(exc, asyncpg.DeadlockDetectedError | asyncpg.SerializationError):
        return TransientConflict("PostgreSQL: transaction conflict, retry")
    if isinstance(exc, asyncpg.DataError | asyncpg.IntegrityConstraintViolationError):
        return InvalidData(f"PostgreSQL refused the data: {exc}")
    return DatabaseUnavailable(f"PostgreSQL: {type(exc).__name__}")


class PostgresConnection(Connection):
    dialect: Dialect = "postgresql"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.raw = conn

    def _failed(self, exc: BaseException) -> Exception:
        translated = translate(exc)
        if isinstance(translated, DatabaseUnavailable):
            # Lost, or stuck (a statement ran out its timeout): nothing more can be done on
            # this connection, and a ROLLBACK or the pool's reset would wait out another
            # timeout first. Closing it aborts its transaction on the server.
            with contextlib.suppress(asyncpg.InterfaceError):  # already back in the pool
                self.raw.terminate()
        return translated

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        try:
            return await self.raw.fetchrow(sql, *args)
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise self._failed(exc) from exc

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        try:
            return list(await self.raw.fetch(sql, *args))
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise self._failed(exc) from exc

    async def execute(self, sql: str, *args: object) -> int:
        try:
            status = await self.raw.execute(sql, *args)
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise self._failed(exc) from exc
        # asyncpg answers with the command tag, e.g. "UPDATE 1"
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0
