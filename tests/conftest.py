"""Shared fixtures: where the real servers are, and what to do when they are not.

Tests that need PostgreSQL or Redis skip with the reason when the server is down,
except under PIXLIVE_REQUIRE_SERVICES=1 (CI), where they fail instead.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlparse

import pytest

PG_ADMIN_URL = os.environ.get("PIXLIVE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PIXLIVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE = os.environ.get("PIXLIVE_REQUIRE_SERVICES") == "1"


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def need(url: str, default_port: int, what: str) -> None:
    if _reachable(url, default_port):
        return
    message = f"{what} is not reachable at {url}"
    if REQUIRE:
        pytest.fail(message + " and PIXLIVE_REQUIRE_SERVICES=1")
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    need(REDIS_URL, 6379, "Redis")
    return REDIS_URL


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    need(PG_ADMIN_URL, 5432, "PostgreSQL")
    return PG_ADMIN_URL


def _with_db(url: str, name: str) -> str:
    parsed = urlparse(url)
    return parsed._replace(path="/" + name).geturl()


@pytest.fixture
async def pg_database(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards.

    Yields a plain `postgresql://` URL.
    """
    import asyncpg

    name = "pixlive_t_" + secrets.token_hex(6)
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _with_db(pg_server_url, name)
    finally:
        admin = await asyncpg.connect(pg_server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port
