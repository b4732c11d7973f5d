"""No event is lost to a crash between COMMIT and publish, nor to a bus connection that
goes silent without closing: a page held by another process learns of the payment within
2 s, on the same connection (the relay in realtime/hub.py reads the events table)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from pixlive.testing.faults import CRASH_AFTER_COMMIT
from tests.e2e.conftest import Server, start_server
from tests.e2e.streams import websocket, ws_messages
from tests.proxy import FreezingProxy

pytestmark = pytest.mark.postgres

BOUND = 2.0  # seconds, as issue 16 asks


def _through(url: str, proxy: FreezingProxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host).geturl()


async def _pair(
    tmp_path: Path, database: str, bus_a: str, bus_b: str, **a_only: str
) -> tuple[Server, Server]:
    a = await asyncio.to_thread(
        start_server,
        tmp_path / "a",
        PIXLIVE_DATABASE_URL=database,
        PIXLIVE_BUS_URL=bus_a,
        **a_only,
    )
    try:
        b = await asyncio.to_thread(
            start_server,
            tmp_path / "b",
            migrate=False,
            api_key=a.api_key,
            PIXLIVE_DATABASE_URL=database,
            PIXLIVE_BUS_URL=bus_b,
        )
    except BaseException:
        a.stop()
        raise
    return a, b


async def _paid_on(page_server: Server, payer: Server, *, payer_dies: bool) -> float:
    """A page on `page_server`, a webhook to `payer`: seconds until the page hears."""
    charge = page_server.create_charge("12.34")
    async with websocket(page_server.url, charge["id"]) as conn:
        (snapshot,) = await ws_messages(conn, 1)
        assert snapshot["type"] == "snapshot"
        started = time.monotonic()
        if payer_dies:
            with pytest.raises(httpx.HTTPError):  # it died before answering
                await asyncio.to_thread(payer.pay, charge["id"], "12.34")
        else:
            answer = await asyncio.to_thread(payer.pay, charge["id"], "12.34")
            assert answer.json()["results"][0]["outcome"] == "paid", answer.text
        (event,) = await ws_messages(conn, 1, timeout=10)
        elapsed = time.monotonic() - started
    assert (event["type"], event["payment_id"]) == ("payment.paid", charge["id"])
    assert page_server.charge(charge["id"])["status"] == "PAID"
    return elapsed


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[FreezingProxy]:
    parts = urlsplit(redis_url)
    proxy = FreezingProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


@pytest.fixture
async def pg_proxy(pg_server_url: str) -> AsyncIterator[FreezingProxy]:
    parts = urlsplit(pg_server_url)
    proxy = FreezingProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


# a crash right after COMMIT ----------------------------------------------------------------


async def _crash_case(tmp_path: Path, database: str, bus: str) -> float:
    a, b = await _pair(tmp_path, database, bus, bus, **{CRASH_AFTER_COMMIT: "payment.paid"})
    try:
        elapsed = await _paid_on(b, a, payer_dies=True)
        assert a.process is not None and a.process.wait(10) == 70  # the fault hook's exit
    finally:
        a.stop()
        b.stop()
    return elapsed


@pytest.mark.redis
async def test_a_crash_after_commit_on_redis_still_reaches_the_other_process(
    tmp_path: Path, pg_database: str, redis_url: str
) -> None:
    assert await _crash_case(tmp_path, pg_database, redis_url) < BOUND


async def test_a_crash_after_commit_on_listen_notify_still_reaches_the_other_process(
    tmp_path: Path, pg_database: str
) -> None:
    assert await _crash_case(tmp_path, pg_database, pg_database) < BOUND


# a partition: the bus connection silent, not closed -------------------------------------


@pytest.mark.redis
async def test_a_page_behind_a_frozen_redis_connection_still_learns(
    tmp_path: Path, pg_database: str, redis_url: str, redis_proxy: FreezingProxy
) -> None:
    a, b = await _pair(tmp_path, pg_database, redis_url, _through(redis_url, redis_proxy))
    try:
        assert await _paid_on(b, a, payer_dies=False) < BOUND  # the bus carries it
        redis_proxy.freeze()
        assert await _paid_on(b, a, payer_dies=False) < BOUND  # the relay does
        assert await _paid_on(a, b, payer_dies=False) < BOUND  # and the other way round
        redis_proxy.thaw()
        assert await _paid_on(b, a, payer_dies=False) < BOUND
    finally:
        a.stop()
        b.stop()


async def test_a_page_behind_a_frozen_listen_connection_still_learns(
    tmp_path: Path, pg_database: str, pg_proxy: FreezingProxy
) -> None:
    # Only b's bus goes through the proxy: its database connections stay up.
    a, b = await _pair(tmp_path, pg_database, pg_database, _through(pg_database, pg_proxy))
    try:
        assert await _paid_on(b, a, payer_dies=False) < BOUND
        pg_proxy.freeze()
        assert await _paid_on(b, a, payer_dies=False) < BOUND
        assert await _paid_on(a, b, payer_dies=False) < BOUND
        pg_proxy.thaw()
        assert await _paid_on(b, a, payer_dies=False) < BOUND
    finally:
        a.stop()
        b.stop()
