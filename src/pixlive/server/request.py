"""One HTTP request as the connection holds it, and which of the server's paths takes it."""

from __future__ import annotations

import asyncio
import re
from enum import Enum

from pixlive.api.webhook import PATHS as WEBHOOK_PATHS

_STREAM = re.compile(r"/payments/pix/([^/]+)/(ws|events)")


class Kind(Enum):
    APP = "app"  # the ASGI app answers it
    WEBHOOK = "webhook"  # the PSP's confirmation, answered by the connection
    SSE = "sse"  # a charge's Server-Sent Events
    WEBSOCKET = "websocket"  # a charge's WebSocket


class Request:
    __slots__ = (
        "answered",
        "body",
        "complete",
        "gone_away",
        "headers",
        "keep_alive",
        "kind",
        "method",
        "path",
        "query",
        "raw_path",
        "received",
        "started_response",
        "too_large",
        "upgrade",
        "version",
        "waiter",
    )

    def __init__(
        self,
        *,
        method: str,
        raw_path: bytes,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        version: str,
        keep_alive: bool,
        upgrade: bool,
    ) -> None:
        self.method = method
        self.raw_path = raw_path
        self.path = path
        self.query = query
        self.headers = headers  # names lower-cased; the head's only, never a trailer's
        self.version = version
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.kind = Kind.APP
        self.body = bytearray()
        self.received = 0
        self.complete = False
        self.answered = False
        self.started_response = False
        self.gone_away = False
        self.too_large = False
        self.waiter: asyncio.Event | None = None

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def declared_length(self) -> int:
        value = self.header(b"content-length")
        return int(value) if value is not None and value.isdigit() else 0

    def expect_continue(self) -> bool:
        value = self.header(b"expect")
        return value is not None and value.lower() == b"100-continue"

    def wake(self) -> None:
        if self.waiter is not None:
            self.waiter.set()

    def gone(self) -> None:
        self.gone_away = True
        self.wake()

    def stream_id(self) -> str | None:
        match = _STREAM.fullmatch(self.path)
        return match.group(1) if match else None


def classify(request: Request, served: bool) -> Kind:
    """Which path takes the request; with no runtime (the app failed to start) the app
    answers everything."""
    if not served:
        return Kind.APP
    if request.method == "POST" and request.path in WEBHOOK_PATHS:
        return Kind.WEBHOOK
    if request.upgrade:
        upgrade = request.header(b"upgrade") or b""
        # Every WebSocket is a charge's; any other path is refused by the stream's code.
        return Kind.WEBSOCKET if upgrade.lower() == b"websocket" else Kind.APP
    if request.method == "GET":
        match = _STREAM.fullmatch(request.path)
        if match is not None and match.group(2) == "events":
            return Kind.SSE
    return Kind.APP
