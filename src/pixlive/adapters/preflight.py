"""Before `serve` and `migrate`: whether the configured database can be used at all.

A database that does not exist, a role the server refuses, a read-only file: those are
mistakes of configuration, which no retry will mend, so the command stops with one line
saying so. A server that is down is not one of them (production starts without its
database and answers 503 until it is back), and is told apart here.
"""

from __future__ import annotations

import asyncio
import sqlite3
from urllib.parse import urlsplit

import asyncpg

from pixlive.adapters.errors import DatabaseUnavailable
from pixlive.adapters.postgres_connection import asyncpg_dsn
from pixlive.adapters.sqlite import commit_probe
from pixlive.adapters.sqlite_connection import sqlite_path
from pixlive.settings import ConfigurationError

# What the PostgreSQL server answers when it is there but this URL cannot work with it.
_REFUSALS = (
    asyncpg.InvalidCatalogNameError,  # database "x" does not exist
    asyncpg.InvalidAuthorizationSpecificationError,  # role "x" does not exist, pg_hba
    asyncpg.InvalidPasswordError,
    asyncpg.ReadOnlySQLTransactionError,
)


class DatabaseRefused(ConfigurationError):
    """PIXLIVE_DATABASE_URL names a database that cannot be used as configured."""


async def check_database(url: str) -> None:
    """Raises DatabaseRefused for a configuration mistake, DatabaseUnavailable when the
    database cannot be reached now."""
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path == ":memory:":
            return
        try:
            await asyncio.to_thread(commit_probe, path)
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc) or "unable to open" in str(exc):
                raise DatabaseRefused(
                    f"PIXLIVE_DATABASE_URL: the SQLite file {path} cannot be written ({exc})"
                ) from None
            raise DatabaseUnavailable(f"SQLite: {exc}") from None
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"SQLite: {exc}") from None
        return
    dsn = asyncpg_dsn(url)
    where = urlsplit(dsn)
    # Only the host and port are repeated: the rest of the URL may hold a password.
    at = f"{where.hostname or 'localhost'}:{where.port or 5432}"
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except _REFUSALS as exc:
        raise DatabaseRefused(f"PIXLIVE_DATABASE_URL: PostgreSQL at {at} says: {exc}") from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {at} ({type(exc).__name__})"
        ) from None
    try:
        await conn.fetchval("SELECT txid_current()", timeout=5)
    except _REFUSALS as exc:
        raise DatabaseRefused(f"PIXLIVE_DATABASE_URL: PostgreSQL at {at} says: {exc}") from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(f"PostgreSQL at {at}: {type(exc).__name__}") from None
    finally:
        conn.terminate()
