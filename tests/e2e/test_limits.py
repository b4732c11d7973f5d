"""Exceeded limits get 429 (or WebSocket close 1013), never a crash, and the server goes on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import start_server
from tests.e2e.streams import websocket, ws_messages


async def test_stream_caps_and_creation_rate(tmp_path: Path) -> None:
    server = await asyncio.to_thread(
        start_server,
        tmp_path / "s",
        PIXLIVE_MAX_STREAMS_PER_CLIENT="3",
        PIXLIVE_CREATE_RATE_PER_SECOND="0.5",
        PIXLIVE_CREATE_BURST="4",
    )
    try:
        charges = [server.create_charge() for _ in range(4)]
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{server.url}/payments/pix", json={"value": "1.00"}, headers=server.auth
            )
            assert answer.status_code == 429
            assert answer.json()["error"]["code"] == "rate_limited"
            assert int(answer.headers["Retry-After"]) >= 1

            async with (
                websocket(server.url, charges[0]["id"]) as a,
                websocket(server.url, charges[1]["id"]) as b,
                websocket(server.url, charges[2]["id"]) as c,
            ):
                for conn in (a, b, c):
                    await ws_messages(conn, 1)
                async with websocket(server.url, charges[3]["id"]) as extra:
                    with pytest.raises(ConnectionClosed) as closed:
                        await asyncio.wait_for(extra.recv(), 10)
                    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
                refused = await client.get(f"{server.url}/payments/pix/{charges[3]['id']}/events")
                assert refused.status_code == 429
                assert refused.json()["error"]["code"] == "too_many_streams"
            # The slots are given back when the clients leave.
            for _ in range(50):
                answer = await client.get(
                    f"{server.url}/payments/pix/{charges[3]['id']}/poll?timeout=0"
                )
                if answer.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert answer.status_code == 200
            assert (await client.get(f"{server.url}/healthz")).status_code == 200
    finally:
        server.stop()
