"""The little a repository needs of a database connection, the same on SQLite and PostgreSQL.

SQL is written once, with PostgreSQL's `$1` placeholders; the SQLite connection rewrites them
to its own `?1` form. Rows are read by column name on both.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

Row = Any  # sqlite3.Row or asyncpg.Record: both index by column name
Dialect = Literal["sqlite", "postgresql"]


class Connection(Protocol):
    dialect: Dialect

    async def fetchrow(self, sql: str, *args: object) -> Row | None: ...

    async def fetch(self, sql: str, *args: object) -> list[Row]: ...

    async def execute(self, sql: str, *args: object) -> int:
        """Runs a statement; returns the number of rows it changed."""
        ...
