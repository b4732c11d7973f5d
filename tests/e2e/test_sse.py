"""A charge's SSE stream as the connection serves it (server/sse.py): the error answers
in the shape of every route, and nothing left behind when a client goes away."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import httpx
import pytest

from tests.e2e.conftest import Server, assert_error
from tests.e2e.streams import sse
from tests.e2e.test_streams import metric, pay

LIVE = 'pixlive_subscribers{transport="sse"}'


async def test_the_stream_has_the_event_stream_and_security_headers(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    async with sse(shared_server.url, f"/payments/pix/{charge['id']}/events") as reader:
        headers = reader.response.headers
        assert headers["content-type"] == "text/event-stream; charset=utf-8"
        assert headers["cache-control"] == "no-store"
        assert headers["x-accel-buffering"] == "no"
        assert headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        (snapshot,) = await reader.take(1)
        assert snapshot.event == "snapshot"
        await pay(shared_server, charge["id"])
        (paid,) = await reader.take(1)
        assert paid.event == "payment.paid" and paid.id is not None


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ("?after=-1", {}, 422),
        ("?after=abc", {}, 422),
        ("?after=1&other=2", {}, 200),  # unknown parameters are ignored, as by the route
        ("", {"Last-Event-ID": "1" * 21}, 422),
    ],
)
def test_what_it_leaves_to_the_route_gets_the_routes_answer(
    shared_server: Server, query: str, headers: dict[str, str], status: int
) -> None:
    charge = shared_server.create_charge()
    url = f"{shared_server.url}/payments/pix/{charge['id']}/events{query}"
    with httpx.Client(timeout=10) as client, client.stream("GET", url, headers=headers) as answer:
        if status == 200:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
        else:
            answer.read()
            assert_error(answer, status)


def test_an_unknown_charge_is_a_json_404(shared_server: Server) -> None:
    answer = shared_server.http.get("/payments/pix/" + "A" * 25 + "/events")
    assert_error(answer, 404, "not_found")


async def test_over_the_per_charge_limit_is_a_429(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    path = f"/payments/pix/{charge['id']}/events"
    readers = []  # held: a reader collected by the GC closes its connection
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(20):
            readers.append(await stack.enter_async_context(sse(shared_server.url, path)))
            await readers[-1].take(1)
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(shared_server.url + path)
        assert_error(answer, 429, "too_many_subscribers")


async def test_a_client_that_leaves_is_forgotten(shared_server: Server) -> None:
    """Closing the socket ends the request: its subscription and slot are given back."""
    charge = shared_server.create_charge()
    host, port = shared_server.url.removeprefix("http://").split(":")
    before = metric(shared_server.http.get("/metrics").text, LIVE)
    sockets = []
    for _ in range(5):
        sock = socket.create_connection((host, int(port)), timeout=10)
        request = f"GET /payments/pix/{charge['id']}/events HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request.encode())
        received = b""
        while b"event: snapshot" not in received:
            received += sock.recv(65536)
        sockets.append(sock)
    assert metric(shared_server.http.get("/metrics").text, LIVE) == before + 5
    for sock in sockets:
        sock.close()
    for _ in range(100):
        if metric(shared_server.http.get("/metrics").text, LIVE) == before:
            break
        await asyncio.sleep(0.05)
    assert metric(shared_server.http.get("/metrics").text, LIVE) == before
