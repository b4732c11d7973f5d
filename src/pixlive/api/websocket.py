"""A charge's live stream over WebSocket, served by the connection itself, not by an ASGI
task: `pixlive serve` gives uvicorn this protocol for its WebSocket upgrades.

Through ASGI an idle WebSocket costs a task, its coroutine frames through every
middleware, the framework's WebSocket object and the protocol library's state: 35–45 KiB
per idle subscriber (docs/performance-log.md). Here it is this object, its transport
and its hub subscription: the hub's wake-up writes the event's frame, prepared once for
all subscribers, straight to the socket, in the same loop turn as the commit that made it.

Any other WebSocket path goes to uvicorn's own implementation and the ASGI app. The same
stream is also served through ASGI by `api/streams.py` for other servers; both open it
with `open_stream` and end it the same way (1000 after a final event, 1012 on shutdown,
1013 when the client is too slow or over a limit).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, cast
from urllib.parse import parse_qs, unquote

import orjson
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import _TrustedHosts
from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol
from uvicorn.server import ServerState

from pixlive import metrics
from pixlive.adapters.errors import DatabaseUnavailable
from pixlive.api import headers
from pixlive.api.params import EVENT_ID_RULE, event_id
from pixlive.api.streams import CLOSE_CODES, Opened, open_stream
from pixlive.domain.errors import ChargeNotFound
from pixlive.domain.ids import is_charge_id
from pixlive.realtime import frames
from pixlive.realtime.admission import Refused
from pixlive.realtime.frames import Frame, FrameParser, Opcode, ProtocolError
from pixlive.runtime import Runtime

log = logging.getLogger("pixlive.websocket")

PATH = re.compile(r"/payments/pix/([^/]*)/ws")
CLOSE_TIMEOUT = 5.0  # seconds to wait for the client's close frame after ours
_DELIVERED = metrics.events_delivered.labels("websocket")
_PING = frames.frame(Opcode.PING, b"")
_SECURITY_HEADERS = b"".join(b"%s: %s\r\n" % pair for pair in headers.BASE) + (
    b"cache-control: no-store\r\n"
)
_REASONS = {400: b"Bad Request", 404: b"Not Found", 422: b"Unprocessable Content",
            426: b"Upgrade Required", 503: b"Service Unavailable"}  # fmt: skip


class Stage:
    HANDSHAKE = 0  # the request is being answered (reading the snapshot)
    OPEN = 1
    CLOSING = 2  # our close frame is sent; waiting for the client's
    CLOSED = 3


def _denial(status: int, code: str, message: str, extra: bytes = b"") -> bytes:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n%s%s\r\n%s"
        % (status, _REASONS[status], len(body), _SECURITY_HEADERS, extra, body)
    )


class Request:
    """The upgrade request as uvicorn hands it over: its head, already parsed once."""

    __slots__ = ("headers", "method", "path", "query")

    def __init__(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        method, target, _ = lines[0].decode("latin-1").split(" ", 2)
        path, _, query = target.partition("?")
        self.method = method
        self.path = unquote(path)
        self.query = query
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.decode("latin-1").partition(":")
                self.headers.setdefault(name.strip().lower(), value.strip())


def _after(query: str) -> tuple[bool, int | None]:
    """`?after=N`, N a non-negative integer, as the ASGI route accepts it."""
    values = parse_qs(query).get("after")
    if not values:
        return True, None
    after = event_id(values[-1])
    return after is not None, after


class WebSocketProtocol(asyncio.Protocol):
    """uvicorn's `ws` protocol class: charge streams here, any other path to uvicorn's."""

    __slots__ = (
        "_closer",
        "_heard",
        "_opening",
        "_parser",
        "_paused",
        "_pinged",
        "app_state",
        "client",
        "config",
        "delegate",
        "opened",
        "runtime",
        "sent",
        "server_state",
        "stage",
        "transport",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
    ) -> None:
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.delegate: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.runtime: Runtime | None = None
        self.opened: Opened | None = None
        self.stage = Stage.HANDSHAKE
        self.sent = 0
        self.client = "unknown"
        self._parser = FrameParser()
        self._opening: asyncio.Task[None] | None = None
        self._closer: asyncio.TimerHandle | None = None
        self._paused = False
        self._pinged = False
        self._heard = False

    # asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.delegate is not None:
            self.delegate.data_received(data)
        elif self.transport is None or self.stage is Stage.CLOSED:
            return
        elif self.opened is None and self._opening is None:
            self._handshake(data)
        else:
            self._frames(data)

    def eof_received(self) -> bool | None:
        if self.delegate is not None:
            return self.delegate.eof_received()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self.delegate is not None:
            self.delegate.connection_lost(exc)
            return
        self._finish()

    def pause_writing(self) -> None:
        if self.delegate is not None:
            self.delegate.pause_writing()
        self._paused = True

    def resume_writing(self) -> None:
        if self.delegate is not None:
            self.delegate.resume_writing()
            return
        self._paused = False
        self._flush()

    # uvicorn's shutdown: the SIGTERM handler has usually closed the streams already.
    def shutdown(self) -> None:
        if self.delegate is not None:
            shutdown = getattr(self.delegate, "shutdown", None)
            if callable(shutdown):
                shutdown()
        elif self.stage is Stage.OPEN:
            self._close(1012, "server restarting")
        elif self.transport is not None:
            self.transport.close()

    # the handshake -----------------------------------------------------------------------

    def _handshake(self, head: bytes) -> None:
        assert self.transport is not None
        try:
            request = Request(head)
        except ValueError:
            self._deny(400, "invalid_request", "malformed upgrade request")
            return
        match = PATH.fullmatch(request.path)
        if match is None:
            self._hand_over(head)
            return
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self.client = self._client_address(request)
        key = frames.accept_key(request.headers.get("sec-websocket-key", ""))
        if request.method != "GET" or key is None:
            self._deny(400, "invalid_request", "not a WebSocket handshake")
            return
        if request.headers.get("sec-websocket-version") != "13":
            self._deny(426, "invalid_request", "WebSocket version 13 only",
                       b"sec-websocket-version: 13\r\n")  # fmt: skip
            return
        payment_id = match.group(1)
        valid, after = _after(request.query)
        if not valid:
            self._deny(422, "invalid_request", f"the query parameter after {EVENT_ID_RULE}")
            return
        runtime = self.app_state.get("runtime")
        if not isinstance(runtime, Runtime):
            self._deny(503, "unavailable", "the server is starting or stopping")
            return
        if not is_charge_id(payment_id):
            self._deny(404, "not_found", "no charge with this id")
            return
        self.runtime = runtime
        self._opening = asyncio.get_running_loop().create_task(self._open(payment_id, after, key))

    async def _open(self, payment_id: str, after: int | None, key: str) -> None:
        assert self.runtime is not None and self.transport is not None
        try:
            opened = await open_stream(self.runtime, payment_id, after, "websocket", self.client)
        except ChargeNotFound:
            self._deny(404, "not_found", "no charge with this id")
            return
        except DatabaseUnavailable:
            self._deny(503, "database_unavailable", "the database is unreachable; retry later")
            return
        except Refused as exc:
            # 1013 "try again later": a browser's script sees a close code, not an HTTP status.
            self.transport.write(_accepted(key))
            self.stage = Stage.OPEN
            self._close(1013, exc.message)
            return
        finally:
            self._opening = None
        if self.transport.is_closing():  # the client left while the snapshot was read
            opened.slot.close()
            return
        self.opened = opened
        self.stage = Stage.OPEN
        self.sent = opened.last_event_id
        out = [_accepted(key), frames.text(orjson.dumps(opened.snapshot).decode())]
        out.extend(item.ws for item in opened.backlog)
        _DELIVERED.inc(len(opened.backlog))
        self.transport.write(b"".join(out))
        if opened.final or any(item.final for item in opened.backlog):
            self._close(1000)
            return
        self.runtime.keepalive.add(self)
        opened.subscriber.on_ready = self._flush
        self._flush()

    def _hand_over(self, head: bytes) -> None:
        """Not a charge stream: uvicorn's own implementation runs the ASGI app for it."""
        assert self.transport is not None and AutoWebSocketsProtocol is not None
        self.delegate = AutoWebSocketsProtocol(
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        self.delegate.connection_made(self.transport)
        if self._paused:
            self.delegate.pause_writing()
        self.delegate.data_received(head)

    def _client_address(self, request: Request) -> str:
        assert self.transport is not None
        peer = self.transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) and peer else None
        if self.config.proxy_headers and "x-forwarded-for" in request.headers:
            trusted = _TrustedHosts(self.config.forwarded_allow_ips)
            if host in trusted:
                chain = request.headers["x-forwarded-for"]
                forwarded, _ = trusted.get_trusted_client_address(chain)
                host = forwarded or host
        return host or "unknown"

    def _deny(self, status: int, code: str, message: str, extra: bytes = b"") -> None:
        assert self.transport is not None
        self.stage = Stage.CLOSED
        self.transport.write(_denial(status, code, message, extra))
        self.transport.close()

    # the stream ----------------------------------------------------------------------

    def _flush(self) -> None:
        """The hub's wake-up: write what is new, end the stream if it is over."""
        opened = self.opened
        if opened is None or self.stage is not Stage.OPEN or self.transport is None:
            return
        subscriber = opened.subscriber
        if self._paused and subscriber.closed is None:
            return  # resume_writing comes back here; the hub drops a client that stays behind
        out = []
        final = False
        for item in subscriber.take():
            if item.id > self.sent:
                out.append(item.ws)
                self.sent = item.id
                if item.final:
                    final = True
                    break
        data = b"".join(out)
        if out:
            _DELIVERED.inc(len(out))
        # The last event and the close frame that ends the stream go in one write.
        if final:
            self._close(1000, after=data)
        elif subscriber.closed is not None:
            self._close(CLOSE_CODES.get(subscriber.closed, 1011), after=data)
        elif data:
            self.transport.write(data)

    def _frames(self, data: bytes) -> None:
        self._heard = True
        try:
            received = self._parser.feed(data)
        except ProtocolError as exc:
            if self.stage is Stage.OPEN:
                self._close(exc.code, exc.reason)
            elif self.transport is not None:
                self.stage = Stage.CLOSED
                self.transport.abort()
            return
        for item in received:
            self._control(item)

    def _control(self, item: Frame) -> None:
        assert self.transport is not None
        if item.opcode is Opcode.PING and self.stage is Stage.OPEN:
            self.transport.write(frames.frame(Opcode.PONG, item.payload))
        elif item.opcode is Opcode.CLOSE:
            if self.stage is Stage.OPEN:
                try:
                    code = frames.close_code(item.payload)
                except ProtocolError as exc:
                    self._close(exc.code, exc.reason)
                    return
                self.transport.write(frames.close(1000 if code == 1005 else code))
            self.stage = Stage.CLOSED
            self.transport.close()
        # Text, binary and pong frames carry nothing a charge stream needs.

    def keepalive(self) -> None:
        """A ping per interval; a client that did not answer the last one is gone."""
        if self.transport is None or self.stage is not Stage.OPEN:
            return
        if self._pinged and not self._heard:
            self.stage = Stage.CLOSED
            self.transport.abort()
            return
        self._pinged, self._heard = True, False
        self.transport.write(_PING)

    def _close(self, code: int, reason: str = "", *, after: bytes = b"") -> None:
        """Our close frame (after the frames in `after`); the connection ends when the
        client answers, or after a wait."""
        if self.transport is None or self.stage is not Stage.OPEN:
            return
        self.stage = Stage.CLOSING
        self._release()
        self.transport.write(after + frames.close(code, reason))
        self._closer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.transport.abort)

    def _release(self) -> None:
        if self.runtime is not None:
            self.runtime.keepalive.discard(self)
        if self.opened is not None:
            self.opened.subscriber.on_ready = None
            self.opened.slot.close()

    def _finish(self) -> None:
        self.stage = Stage.CLOSED
        self._release()
        if self._opening is not None:
            self._opening.cancel()
        if self._closer is not None:
            self._closer.cancel()
            self._closer = None
        self.server_state.connections.discard(self)


def _accepted(key: str) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: %s\r\n\r\n" % key.encode()
    )
