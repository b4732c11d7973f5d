"""The SQLite connection: statements right on the event loop, errors translated to ours.

SQL is written once with PostgreSQL's `$1` placeholders; this connection rewrites them to
SQLite's `?1` form (once per statement text).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from pixlive.adapters.connection import Connection, Dialect, Row
from pixlive.services.errors import Conflict, DatabaseUnavailable

_PLACEHOLDER = re.compile(r"\$(\d+)")
_converted: dict[str, str] = {}


def _sqlite_sql(sql: str) -> str:
    converted = _converted.get(sql)
    if converted is None:
        converted = _converted[sql] = _PLACEHOLDER.sub(r"?\1", sql)
    return converted


def sqlite_path(url: str) -> str:
    """The file of `sqlite+aiosqlite:///./pixlive.db` or `sqlite:////abs/path.db`."""
    for prefix in ("sqlite+aiosqlite:///", "sqlite+pysqlite:///", "sqlite:///"):
        if url.startswith(prefix):
            path = url[len(prefix) :].split("?", 1)[0]
            return path or ":memory:"
    raise ValueError(f"not a SQLite URL: {url.split('://', 1)[0]}://…")


def connect(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class SqliteConnection(Connection):
    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.raw = conn

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        try:
            cursor = self.raw.execute(_sqlite_sql(sql), args)
            row = cursor.fetchone()
            cursor.close()  # finishes a RETURNING statement so its changes are complete
            return row
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        try:
            return self.raw.execute(_sqlite_sql(sql), args).fetchall()
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    async def execute(self, sql: str, *args: object) -> int:
        try:
            return self.raw.execute(_sqlite_sql(sql), args).rowcount
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> int:
        """One statement (in SQLite's own `?` form) for many rows, looped over in C; the
        number of rows it changed in all. For the set-wise writes of a batch (sqlite_store.py)."""
        try:
            return self.raw.executemany(sql, rows).rowcount
        except sqlite3.Error as exc:
            raise translate(exc) from exc


def translate(exc: sqlite3.Error) -> Exception:
    if isinstance(exc, sqlite3.IntegrityError):
        return Conflict(str(exc))
    return DatabaseUnavailable(f"SQLite: {exc}")
