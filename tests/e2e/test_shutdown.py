"""SIGTERM: streams end cleanly at once (WebSocket 1012), and the server exits in time."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import start_server
from tests.e2e.streams import sse, websocket, ws_messages


async def test_sigterm_ends_streams_and_exits(tmp_path: Path) -> None:
    server = await asyncio.to_thread(start_server, tmp_path / "s")
    try:
        charge = server.create_charge()
        assert server.process is not None
        async with (
            websocket(server.url, charge["id"]) as conn,
            sse(server.url, f"/payments/pix/{charge['id']}/events") as reader,
        ):
            await ws_messages(conn, 1)
            events = reader.events()
            await asyncio.wait_for(anext(events), 10)
            began = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(conn.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
            # The SSE stream ends like a stream that is done, not with a broken connection.
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(anext(events), 10)
        code = await asyncio.to_thread(server.process.wait, 15)
        # uvicorn re-raises the signal once it has shut down cleanly, so the exit
        # status says SIGTERM.
        assert code in (0, -signal.SIGTERM)
        assert time.monotonic() - began < 10
    finally:
        server.stop(signal.SIGKILL)
