"""Many processes: a webhook taken by one server reaches a page held by another, through
Redis or PostgreSQL alone; and it keeps doing so when Redis goes down and comes back, or a
server is killed."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from websockets.exceptions import ConnectionClosed

from tests.conftest import REQUIRE
from tests.e2e.conftest import Server, free_port, start_server
from tests.e2e.streams import websocket, ws_messages

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def pair(workdir: Path, database_url: str, bus_url: str) -> tuple[Server, Server]:
    env = {"PIXLIVE_DATABASE_URL": database_url, "PIXLIVE_BUS_URL": bus_url}
    first = start_server(workdir / "a", **env)
    try:
        second = start_server(workdir / "b", migrate=False, **env)
    except BaseException:
        first.stop()
        raise
    return first, second


@pytest.fixture
async def servers_redis(
    tmp_path: Path, pg_database: str, redis_url: str
) -> AsyncIterator[tuple[Server, Server]]:
    a, b = await asyncio.to_thread(pair, tmp_path, pg_database, redis_url)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


async def pay(server: Server, payment_id: str, valor: str = "12.34") -> None:
    answer = await asyncio.to_thread(server.pay, payment_id, valor)
    assert answer.status_code == 200, answer.text


async def test_webhook_on_one_process_reaches_a_page_on_another(
    servers_redis: tuple[Server, Server],
) -> None:
    a, b = servers_redis
    charge = a.create_charge()
    async with websocket(a.url, charge["id"]) as conn:
        await ws_messages(conn, 1)
        await pay(b, charge["id"])
        (event,) = await ws_messages(conn, 1)
    assert (event["type"], event["payment_id"]) == ("payment.paid", charge["id"])


async def test_postgres_bus_alone_carries_events_across_processes(
    tmp_path: Path, pg_database: str
) -> None:
    a, b = await asyncio.to_thread(pair, tmp_path, pg_database, pg_database)
    try:
        charge = b.create_charge()
        async with websocket(a.url, charge["id"]) as conn:
            await ws_messages(conn, 1)
            await pay(b, charge["id"])
            (event,) = await ws_messages(conn, 1)
        assert event["type"] == "payment.paid"
    finally:
        a.stop()
        b.stop()


# Faults -------------------------------------------------------------------------------------


class RedisServer:
    """A private, real redis-server that a test may stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path, redis_url: str) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed"
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_redis_outage_loses_no_notification(
    tmp_path: Path, pg_database: str, private_redis: RedisServer
) -> None:
    a, b = await asyncio.to_thread(pair, tmp_path, pg_database, private_redis.url)
    try:
        charges = [a.create_charge() for _ in range(5)]
        async with asyncio.timeout(60):
            conns = []
            for charge in charges:
                cm = websocket(a.url, charge["id"])
                conns.append((cm, await cm.__aenter__()))
            try:
                for _, conn in conns:
                    await ws_messages(conn, 1)
                private_redis.stop()
                # During the outage every webhook is still taken and recorded.
                for charge in charges:
                    await pay(b, charge["id"])
                await asyncio.sleep(0.5)
                private_redis.start()
                for charge, (_, conn) in zip(charges, conns, strict=True):
                    (event,) = await ws_messages(conn, 1, timeout=30)
                    assert (event["type"], event["payment_id"]) == ("payment.paid", charge["id"])
            finally:
                for cm, _ in conns:
                    await cm.__aexit__(None, None, None)
    finally:
        a.stop()
        b.stop()


async def close_all(cms: list[Any]) -> None:
    for cm in cms:
        try:
            await cm.__aexit__(None, None, None)
        except Exception:  # noqa: S110 - the server is gone; the close cannot be clean
            pass


async def resume_on(
    server: Server, charges: list[dict[str, Any]], last_seen: dict[str, int]
) -> None:
    """Payments land on the surviving process while the clients are away; each client
    then resumes there from the last event it saw, and gets them all, once, in order."""
    for charge in charges:
        await pay(server, charge["id"], "1.00")
        await pay(server, charge["id"])
    for charge in charges:
        async with websocket(server.url, charge["id"], after=last_seen[charge["id"]]) as conn:
            snapshot, mismatch, paid = await ws_messages(conn, 3)
        assert snapshot["payment"]["status"] == "PAID"
        assert [mismatch["type"], paid["type"]] == ["payment.mismatch", "payment.paid"]


async def test_killed_server_clients_resume_on_the_other(
    servers_redis: tuple[Server, Server],
) -> None:
    a, b = servers_redis
    charges = [a.create_charge() for _ in range(3)]
    last_seen = {}
    for charge in charges:
        async with websocket(a.url, charge["id"]) as conn:
            (snapshot,) = await ws_messages(conn, 1)
            last_seen[charge["id"]] = snapshot["last_event_id"]
    cms = [websocket(a.url, c["id"]) for c in charges]
    conns = [await cm.__aenter__() for cm in cms]
    for conn in conns:
        await ws_messages(conn, 1)
    assert a.process is not None
    os.kill(a.process.pid, signal.SIGKILL)
    a.process.wait(10)
    await close_all(cms)
    await resume_on(b, charges, last_seen)


async def test_sigterm_clients_reconnect_to_the_other_and_resume(
    servers_redis: tuple[Server, Server],
) -> None:
    """A rolling restart: the server going away tells its clients so (1012) at once, and
    they resume on another process from where they stopped."""
    a, b = servers_redis
    charges = [a.create_charge() for _ in range(3)]
    cms = [websocket(a.url, c["id"]) for c in charges]
    conns = [await cm.__aenter__() for cm in cms]
    last_seen = {}
    try:
        for charge, conn in zip(charges, conns, strict=True):
            (snapshot,) = await ws_messages(conn, 1)
            last_seen[charge["id"]] = snapshot["last_event_id"]
        assert a.process is not None
        a.process.send_signal(signal.SIGTERM)
        for conn in conns:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(conn.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    finally:
        await close_all(cms)
    await resume_on(b, charges, last_seen)
