"""Clients of the three live transports, as a page or an integration would use them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect


def ws_url(base: str, payment_id: str, after: int | None = None) -> str:
    url = base.replace("http://", "ws://") + f"/payments/pix/{payment_id}/ws"
    return url if after is None else f"{url}?after={after}"


async def ws_messages(
    conn: ClientConnection, count: int, timeout: float = 10
) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        out.append(json.loads(await asyncio.wait_for(conn.recv(), timeout)))
    return out


@asynccontextmanager
async def websocket(
    base: str, payment_id: str, after: int | None = None
) -> AsyncIterator[ClientConnection]:
    async with connect(ws_url(base, payment_id, after), open_timeout=10) as conn:
        yield conn


@dataclass
class SseEvent:
    event: str
    data: dict[str, Any]
    id: str | None


@dataclass
class SseReader:
    response: httpx.Response
    comments: list[str] = field(default_factory=list)
    _lines: AsyncIterator[str] | None = None

    async def events(self) -> AsyncIterator[SseEvent]:
        if self._lines is None:
            self._lines = self.response.aiter_lines()
        event, data, ident = "message", [], None
        async for line in self._lines:
            if line == "":
                if data:
                    yield SseEvent(event, json.loads("\n".join(data)), ident)
                event, data, ident = "message", [], None
            elif line.startswith(":"):
                self.comments.append(line)
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
                elif name == "id":
                    ident = value

    async def take(self, count: int, timeout: float = 10) -> list[SseEvent]:
        out: list[SseEvent] = []

        async def read() -> None:
            async for item in self.events():
                out.append(item)
                if len(out) == count:
                    return

        await asyncio.wait_for(read(), timeout)
        return out


@asynccontextmanager
async def sse(
    base: str, path: str, headers: dict[str, str] | None = None
) -> AsyncIterator[SseReader]:
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30, connect=5)) as client,
        client.stream("GET", base + path, headers=headers or {}) as response,
    ):
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseReader(response)


async def poll(
    base: str, payment_id: str, after: int | None = None, timeout: float = 10
) -> dict[str, Any]:
    params: dict[str, Any] = {"timeout": timeout}
    if after is not None:
        params["after"] = after
    async with httpx.AsyncClient(timeout=timeout + 10) as client:
        answer = await client.get(f"{base}/payments/pix/{payment_id}/poll", params=params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())
