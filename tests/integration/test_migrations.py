"""`pixlive migrate` on an empty database, again on a migrated one, and against the schema
the code reads (`adapters/schema.py`), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from itest import T0, start_stop
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from pixlive.adapters.database import database_from_url
from pixlive.adapters.migrate import alembic_url, head_revision, upgrade
from pixlive.adapters.schema import metadata

TABLES = set(metadata.tables)  # the schema test below checks the migrations make them all
HEAD = head_revision()


async def _query(url: str, sql: str) -> list[Any]:
    db = database_from_url(url)
    await db.start()
    try:
        async with db.read() as reader:
            return [tuple(row) for row in await reader.conn.fetch(sql)]
    finally:
        await db.close()


def tables(url: str) -> set[str]:
    sql = (
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        if url.startswith("sqlite")
        else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    )
    return {row[0] for row in asyncio.run(_query(url, sql))}


def schema_dump(url: str) -> list[Any]:
    """Everything that describes the schema: a re-run that changed any of it would show."""
    if url.startswith("sqlite"):
        sql = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
    else:
        sql = (
            "SELECT 'column', table_name, column_name, data_type, is_nullable, "
            "COALESCE(column_default, '') FROM information_schema.columns "
            "WHERE table_schema = 'public' UNION ALL "
            "SELECT 'index', tablename, indexname, indexdef, '', '' FROM pg_indexes "
            "WHERE schemaname = 'public' ORDER BY 1, 2, 3"
        )
    return asyncio.run(_query(url, sql))


def version(url: str) -> list[Any]:
    return asyncio.run(_query(url, "SELECT version_num FROM alembic_version"))


def test_upgrade_on_an_empty_database_creates_every_table(empty_url: str) -> None:
    assert tables(empty_url) == set()

    upgrade(empty_url)

    assert tables(empty_url) == TABLES | {"alembic_version"}
    assert version(empty_url) == [(HEAD,)]


def test_upgrade_twice_is_a_no_op(empty_url: str) -> None:
    upgrade(empty_url)
    asyncio.run(start_stop(empty_url, lambda stack: stack.new_charge(500, now=T0)))
    before = schema_dump(empty_url)

    upgrade(empty_url)

    assert schema_dump(empty_url) == before
    assert version(empty_url) == [(HEAD,)]
    # the data is still there
    assert asyncio.run(_query(empty_url, "SELECT value, status FROM charges")) == [(500, "ACTIVE")]


def test_upgrade_takes_the_driver_urls_of_the_settings_too(empty_url: str) -> None:
    """PIXLIVE_DATABASE_URL is `sqlite+aiosqlite://…` or `postgresql+asyncpg://…`."""
    driver_url = alembic_url(empty_url)
    assert "+" in driver_url.split("://", 1)[0]

    upgrade(driver_url)

    assert tables(driver_url) == TABLES | {"alembic_version"}
    assert tables(empty_url) == TABLES | {"alembic_version"}


def test_the_migrated_schema_is_the_one_the_code_declares(db_url: str) -> None:
    """No drift between the migrations and `adapters/schema.py` (what autogenerate sees)."""

    async def diff() -> list[Any]:
        engine = create_async_engine(alembic_url(db_url), poolclass=pool.NullPool)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
                )
        finally:
            await engine.dispose()

    assert asyncio.run(diff()) == []


def test_upgrade_creates_the_directory_of_a_new_sqlite_file(tmp_path: Path) -> None:
    """As the server itself does: `pixlive migrate` on a fresh host, before any start."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'pixlive.db'}"

    upgrade(url)

    assert tables(url) == TABLES | {"alembic_version"}
