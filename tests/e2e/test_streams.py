"""Each live transport against a real server: snapshot, the paid event after a signed
webhook, resume with nothing missed or repeated, the end after a final event, cancel and
expiry reaching the client, limits."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.conftest import Server
from tests.e2e.streams import poll, sse, websocket, ws_messages


async def pay(server: Server, payment_id: str, valor: str = "12.34") -> None:
    answer = await asyncio.to_thread(server.pay, payment_id, valor)
    assert answer.status_code == 200, answer.text


async def cancel(server: Server, payment_id: str) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{server.url}/payments/pix/{payment_id}/cancel", headers=server.auth
        )
    assert answer.status_code == 200, answer.text


def make_due(server: Server, payment_id: str) -> None:
    """Moves a charge's expiry into the past, as the passing of time would."""
    with sqlite3.connect(server.workdir / "pixlive.db") as conn:
        conn.execute(
            "UPDATE charges SET expires_at = ? WHERE id = ?",
            (int(time.time() * 1000) - 1000, payment_id),
        )


# WebSocket ---------------------------------------------------------------------------------


async def test_websocket_snapshot_then_paid_then_normal_close(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    async with websocket(shared_server.url, charge["id"]) as conn:
        (snapshot,) = await ws_messages(conn, 1)
        assert snapshot["type"] == "snapshot"
        assert snapshot["payment"]["status"] == "ACTIVE"
        assert snapshot["last_event_id"] == charge["last_event_id"]
        await pay(shared_server, charge["id"])
        (event,) = await ws_messages(conn, 1)
        assert event["type"] == "payment.paid"
        assert event["status"] == "PAID"
        assert event["payment_id"] == charge["id"]
        assert event["id"] > snapshot["last_event_id"]
        assert set(event) == {"id", "type", "payment_id", "status", "at", "data"}
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(conn.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


async def test_websocket_resume_misses_nothing_and_repeats_nothing(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    async with websocket(shared_server.url, charge["id"]) as conn:
        (snapshot,) = await ws_messages(conn, 1)
    seen = snapshot["last_event_id"]
    # While the client is away: money that does not settle it, then the right amount.
    await pay(shared_server, charge["id"], "1.00")
    await pay(shared_server, charge["id"], "12.34")
    async with websocket(shared_server.url, charge["id"], after=seen) as conn:
        snapshot2, mismatch, paid = await ws_messages(conn, 3)
        assert snapshot2["payment"]["status"] == "PAID"
        assert [mismatch["type"], paid["type"]] == ["payment.mismatch", "payment.paid"]
        assert seen < mismatch["id"] < paid["id"]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(conn.recv(), 10)


async def test_websocket_cancel_and_expiry_reach_the_client(shared_server: Server) -> None:
    cancelled = shared_server.create_charge()
    expiring = shared_server.create_charge()
    async with (
        websocket(shared_server.url, cancelled["id"]) as a,
        websocket(shared_server.url, expiring["id"]) as b,
    ):
        await ws_messages(a, 1)
        await ws_messages(b, 1)
        await cancel(shared_server, cancelled["id"])
        make_due(shared_server, expiring["id"])
        (event_a,) = await ws_messages(a, 1)
        (event_b,) = await ws_messages(b, 1)
    assert (event_a["type"], event_a["status"]) == ("payment.cancelled", "CANCELLED")
    assert (event_b["type"], event_b["status"]) == ("payment.expired", "EXPIRED")


async def test_websocket_unknown_charge_is_404(shared_server: Server) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with websocket(shared_server.url, "A" * 25):
            pass
    assert refused.value.response.status_code == 404
    with pytest.raises(InvalidStatus) as refused:
        async with websocket(shared_server.url, "not-an-id"):
            pass
    assert refused.value.response.status_code == 404


async def test_final_charge_gives_snapshot_and_ends(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    await pay(shared_server, charge["id"])
    async with websocket(shared_server.url, charge["id"]) as conn:
        (snapshot,) = await ws_messages(conn, 1)
        assert snapshot["payment"]["status"] == "PAID"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(conn.recv(), 10)


async def test_subscribers_per_charge_are_limited(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    opened = []
    try:
        for _ in range(20):
            cm = websocket(shared_server.url, charge["id"])
            conn = await cm.__aenter__()
            opened.append(cm)
            await ws_messages(conn, 1)
        async with websocket(shared_server.url, charge["id"]) as extra:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(extra.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        async with httpx.AsyncClient() as client:
            answer = await client.get(
                f"{shared_server.url}/payments/pix/{charge['id']}/poll?timeout=0"
            )
        assert answer.status_code == 429
        assert answer.json()["error"]["code"] == "too_many_subscribers"
    finally:
        for cm in opened:
            await cm.__aexit__(None, None, None)
    # The slots free up once the clients leave.
    for _ in range(50):
        async with httpx.AsyncClient() as client:
            answer = await client.get(
                f"{shared_server.url}/payments/pix/{charge['id']}/poll?timeout=0"
            )
        if answer.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert answer.status_code == 200


# Server-Sent Events ---------------------------------------------------------------------------


async def test_sse_snapshot_paid_end(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    async with sse(shared_server.url, f"/payments/pix/{charge['id']}/events") as reader:
        events = reader.events()
        snapshot = await asyncio.wait_for(anext(events), 10)
        assert snapshot.event == "snapshot"
        assert snapshot.data["payment"]["status"] == "ACTIVE"
        await pay(shared_server, charge["id"])
        paid = await asyncio.wait_for(anext(events), 10)
        assert paid.event == "payment.paid"
        assert paid.id == str(paid.data["id"])
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(events), 10)  # the shared_server ended the stream


async def test_sse_resume_with_last_event_id(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    async with sse(shared_server.url, f"/payments/pix/{charge['id']}/events") as reader:
        (snapshot,) = await reader.take(1)
    last = snapshot.id
    assert last is not None
    await pay(shared_server, charge["id"], "2.00")
    await pay(shared_server, charge["id"])
    async with sse(
        shared_server.url, f"/payments/pix/{charge['id']}/events", {"Last-Event-ID": last}
    ) as reader:
        items = await reader.take(3)
    assert [i.event for i in items] == ["snapshot", "payment.mismatch", "payment.paid"]
    assert int(items[1].id or 0) > int(last)


async def test_sse_unknown_charge_is_404(shared_server: Server) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{shared_server.url}/payments/pix/{'B' * 25}/events")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


async def test_sse_keepalive_comment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.e2e.conftest import start_server

    quick = start_server(tmp_path / "s", PIXLIVE_SSE_KEEPALIVE_SECONDS="0.3")
    try:
        charge = quick.create_charge()
        async with sse(quick.url, f"/payments/pix/{charge['id']}/events") as reader:
            await reader.take(1)
            with pytest.raises(TimeoutError):
                await reader.take(1, timeout=1.5)
            assert any(c.startswith(": keepalive") for c in reader.comments)
    finally:
        quick.stop()


# Long poll --------------------------------------------------------------------------------------


async def test_long_poll_waits_for_the_event(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    first = await poll(shared_server.url, charge["id"], timeout=0)
    assert first["events"] == []
    assert first["snapshot"]["payment"]["status"] == "ACTIVE"
    after = first["snapshot"]["last_event_id"]
    waiting = asyncio.create_task(poll(shared_server.url, charge["id"], after=after, timeout=20))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await pay(shared_server, charge["id"])
    answer = await asyncio.wait_for(waiting, 15)
    assert [e["type"] for e in answer["events"]] == ["payment.paid"]
    assert answer["snapshot"]["payment"]["status"] == "PAID"


async def test_long_poll_resume_and_timeout(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    await pay(shared_server, charge["id"], "3.00")
    answer = await poll(shared_server.url, charge["id"], after=0, timeout=1)
    assert [e["type"] for e in answer["events"]] == ["payment.created", "payment.mismatch"]
    last = answer["events"][-1]["id"]
    empty = await poll(shared_server.url, charge["id"], after=last, timeout=0.5)
    assert empty["events"] == []
    async with httpx.AsyncClient() as client:
        too_long = await client.get(
            f"{shared_server.url}/payments/pix/{charge['id']}/poll?timeout=31"
        )
    assert too_long.status_code == 422


# The merchant's stream -------------------------------------------------------------------------


async def test_merchant_stream_needs_a_key_and_resumes(shared_server: Server) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{shared_server.url}/events")
    assert answer.status_code == 401
    first = shared_server.create_charge()
    async with sse(shared_server.url, "/events", shared_server.auth) as reader:
        events = reader.events()
        await pay(shared_server, first["id"])
        paid = await asyncio.wait_for(anext(events), 10)
        assert (paid.event, paid.data["payment_id"]) == ("payment.paid", first["id"])
    second = shared_server.create_charge()
    await cancel(shared_server, second["id"])
    headers = {**shared_server.auth, "Last-Event-ID": paid.id or ""}
    async with sse(shared_server.url, "/events", headers) as reader:
        missed = await reader.take(2)
    assert [(m.event, m.data["payment_id"]) for m in missed] == [
        ("payment.created", second["id"]),
        ("payment.cancelled", second["id"]),
    ]


# Metrics --------------------------------------------------------------------------------------


def metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


async def test_metrics_count_subscribers_and_deliveries(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    async with httpx.AsyncClient() as client:
        before = (await client.get(f"{shared_server.url}/metrics")).text
        async with websocket(shared_server.url, charge["id"]) as conn:
            await ws_messages(conn, 1)
            during = (await client.get(f"{shared_server.url}/metrics")).text
            await pay(shared_server, charge["id"])
            await ws_messages(conn, 1)
        after = (await client.get(f"{shared_server.url}/metrics")).text
    live = 'pixlive_subscribers{transport="websocket"}'
    assert metric(during, live) == metric(before, live) + 1
    delivered = 'pixlive_events_delivered_total{transport="websocket"}'
    assert metric(after, delivered) >= metric(before, delivered) + 1
    published = "pixlive_events_published_total"
    assert metric(after, published) > metric(before, published)
    assert "pixlive_subscribers_dropped_total" in after
    assert "pixlive_bus_reconnects" in after
