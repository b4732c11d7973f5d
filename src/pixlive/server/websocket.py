"""A charge's live stream over WebSocket, on websockets' sans-I/O `ServerProtocol`.

The connection is this object, its transport and its hub subscription: no task, no ASGI
scope. The hub's wake-up writes each event's frame (serialised once for every subscriber,
realtime/wire.py) straight to the socket in the loop turn of the commit that made it. The
library does the rest of RFC 6455: the handshake's checks, the client's frames, pongs,
the closing handshake. The stream ends with 1000 after a final event, 1012 on shutdown,
1013 when the client is too slow or over a limit, 1007 on a text frame that is not UTF-8.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs

import orjson
from websockets.exceptions import InvalidState
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request as HandshakeRequest
from websockets.http11 import Response as HandshakeResponse
from websockets.protocol import State
from websockets.server import ServerProtocol

from pixlive import metrics
from pixlive.adapters.errors import DatabaseUnavailable
from pixlive.api.params import EVENT_ID_RULE, event_id
from pixlive.api.streams import CLOSE_CODES, Opened, open_stream
from pixlive.domain.errors import ChargeNotFound
from pixlive.domain.ids import is_charge_id
from pixlive.realtime.admission import Refused
from pixlive.realtime.clock import Clock, Timer
from pixlive.runtime import Runtime
from pixlive.server import answer

if TYPE_CHECKING:
    from pixlive.server.request import Request

# The connection (server/http.py), which imports this module: typed loosely here.
HttpProtocol = Any

log = logging.getLogger("pixlive.websocket")
# The library reports each handshake at INFO: a line per page view, kept out of the log.
_LIBRARY_LOG = logging.getLogger("pixlive.websocket.protocol")
_LIBRARY_LOG.setLevel(logging.WARNING)

CLOSE_TIMEOUT = 5.0  # seconds to wait for the client's close frame after ours
MAX_MESSAGE = 4096  # bytes a client may send in one message; nothing it sends needs more
_DELIVERED = metrics.events_delivered.labels("websocket")
_PING = Frame(Opcode.PING, b"").serialize(mask=False)
_NO_STORE = [(b"cache-control", b"no-store")]


def start(conn: HttpProtocol, request: Request) -> None:
    """The upgrade request's turn: refuse it with the error JSON, or take the socket over."""
    runtime = conn.runtime
    assert runtime is not None and conn.transport is not None

    def deny(
        status: int, code: str, message: str, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        request.keep_alive = False
        conn.respond(
            request, status, answer.error_body(code, message), [*_NO_STORE, *(extra or [])]
        )

    payment_id = request.stream_id()
    if payment_id is None or not request.path.endswith("/ws"):
        # The app has no WebSocket routes: refused before the upgrade, as Starlette does.
        deny(403, "forbidden", "no WebSocket is served at this path")
        return
    origin = (request.header(b"origin") or b"").lower().rstrip(b"/")
    if origin not in conn.limits.origins:
        deny(403, "forbidden_origin", "pages of this origin may not open this stream")
        return
    if request.header(b"sec-websocket-version") != b"13":
        deny(
            426, "invalid_request", "WebSocket version 13 only", [(b"sec-websocket-version", b"13")]
        )
        return
    protocol = ServerProtocol(max_size=MAX_MESSAGE, logger=_LIBRARY_LOG)
    try:
        protocol.receive_data(_head(request))
        events = protocol.events_received()
        if request.method != "GET" or not events or not isinstance(events[0], HandshakeRequest):
            raise ValueError("not a WebSocket handshake")
        response = protocol.accept(events[0])
    except (ValueError, InvalidState):
        deny(400, "invalid_request", "not a WebSocket handshake")
        return
    if response.status_code != 101:
        deny(response.status_code, "invalid_request", _first_line(response))
        return
    valid, after = _after(request.query)
    if not valid:
        deny(422, "invalid_request", f"the query parameter after {EVENT_ID_RULE}")
        return
    if not is_charge_id(payment_id):
        deny(404, "not_found", "no charge with this id")
        return
    socket = ChargeSocket(conn, request, runtime, protocol, response)
    socket.open(payment_id, after)


def _first_line(response: HandshakeResponse) -> str:
    text = response.body.decode("utf-8", "replace").strip() if response.body else ""
    return text.splitlines()[0] if text else response.reason_phrase


def _head(request: Request) -> bytes:
    """The handshake as the client sent it, for the library to read (the parser has
    already bounded it)."""
    target = request.raw_path + (b"?" + request.query if request.query else b"")
    lines = [b"GET " + target + b" HTTP/1.1"]
    lines.extend(name + b": " + value for name, value in request.headers)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _after(query: bytes) -> tuple[bool, int | None]:
    """`?after=N`, N a non-negative integer, as the long poll accepts it."""
    values = parse_qs(query.decode("latin-1")).get("after")
    if not values:
        return True, None
    after = event_id(values[-1])
    return after is not None, after


class ChargeSocket(asyncio.Protocol):
    """The transport's protocol once the upgrade is accepted."""

    __slots__ = (
        "_closer",
        "_decoder",
        "_heard",
        "_opening",
        "_paused",
        "_pinged",
        "_read_paused",
        "clock",
        "conn",
        "opened",
        "protocol",
        "request",
        "response",
        "runtime",
        "sent",
        "server_state",
        "transport",
    )

    def __init__(
        self,
        conn: HttpProtocol,
        request: Request,
        runtime: Runtime,
        protocol: ServerProtocol,
        response: HandshakeResponse,
    ) -> None:
        self.conn: HttpProtocol | None = conn
        self.request: Request | None = request
        self.runtime = runtime
        self.protocol = protocol
        self.response: HandshakeResponse | None = response
        self.server_state = conn.server_state
        self.transport = cast(asyncio.Transport, conn.transport)
        self.clock: Clock = conn.clock
        self.opened: Opened | None = None
        self.sent = 0
        self._opening: asyncio.Task[None] | None = None
        self._closer: Timer | None = None
        self._decoder: codecs.IncrementalDecoder | None = None
        self._paused = conn.write_paused
        self._read_paused = False
        self._pinged = False
        self._heard = False

    # the handshake -----------------------------------------------------------------------

    def open(self, payment_id: str, after: int | None) -> None:
        conn = self.conn
        assert conn is not None and self.request is not None
        conn.stream = self
        client = conn.client_address(self.request)
        self._opening = asyncio.get_running_loop().create_task(
            self._open(payment_id, after, client)
        )

    async def _open(self, payment_id: str, after: int | None, client: str) -> None:
        conn, request = self.conn, self.request
        assert conn is not None and request is not None
        try:
            opened = await open_stream(self.runtime, payment_id, after, "websocket", client)
        except ChargeNotFound:
            self._deny(404, "not_found", "no charge with this id")
            return
        except DatabaseUnavailable:
            self._deny(503, "database_unavailable", "the database is unreachable; retry later")
            return
        except Refused as exc:
            # 1013 "try again later": a browser's script sees a close code, not an HTTP status.
            self._take_over()
            self._close(CloseCode.TRY_AGAIN_LATER, exc.message)
            return
        finally:
            self._opening = None
        if self.transport.is_closing():  # the client left while the snapshot was read
            opened.slot.close()
            return
        self._take_over()
        self.opened = opened
        self.sent = opened.last_event_id
        out = [*self.protocol.data_to_send()]
        out.append(Frame(Opcode.TEXT, orjson.dumps(opened.snapshot)).serialize(mask=False))
        out.extend(item.ws for item in opened.backlog)
        _DELIVERED.inc(len(opened.backlog))
        self.transport.write(b"".join(out))
        if opened.final or any(item.final for item in opened.backlog):
            self._close(CloseCode.NORMAL_CLOSURE)
            return
        self.runtime.keepalive.add(self)
        opened.subscriber.on_ready = self.flush
        self.flush()

    def _deny(self, status: int, code: str, message: str) -> None:
        conn, request = self.conn, self.request
        self.conn = self.request = None
        if conn is None or request is None:
            return
        conn.stream = None
        request.keep_alive = False
        conn.respond(request, status, answer.error_body(code, message), _NO_STORE)

    def _take_over(self) -> None:
        """The 101 goes out; the socket is this object's from now on."""
        conn, request = self.conn, self.request
        assert conn is not None and request is not None and self.response is not None
        self.conn = self.request = None
        request.answered = True
        conn.log_access(request, 101)
        conn.server_state.connections.discard(conn)
        conn.stream = None
        conn.current = None
        self.server_state.connections.add(self)
        self.protocol.send_response(self.response)
        self.response = None
        self.transport.set_protocol(self)

    # asyncio.Protocol ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Frame):
                self._frame(event)
        self._send_pending()

    def eof_received(self) -> bool | None:
        # The client is gone; the transport closes. Told of it, the library would keep
        # the "unexpected end of stream" and its traceback: a cycle through its parser.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        if self._opening is not None:
            self._opening.cancel()
            self._opening = None
        if self._closer is not None:
            self._closer.cancel()
            self._closer = None
        self.server_state.connections.discard(self)

    def lost(self) -> None:
        """The client left before the upgrade was answered."""
        self.conn = self.request = None
        if self._opening is not None:
            self._opening.cancel()
            self._opening = None

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()
        self.flush()

    def shutdown(self) -> None:
        """uvicorn's shutdown (the SIGTERM handler has usually closed the streams already)."""
        if self.conn is not None:
            self._deny(503, "unavailable", "the server is stopping")
        elif self.protocol.state is State.OPEN:
            self._close(CloseCode.SERVICE_RESTART, "server restarting")
        else:
            self.transport.close()

    # what the client sends ---------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        self._heard = True
        opcode = frame.opcode
        if opcode is Opcode.TEXT or (opcode is Opcode.CONT and self._decoder is not None):
            # Nothing a client says is read, but RFC 6455 wants text to be UTF-8.
            if self._decoder is None:
                self._decoder = codecs.getincrementaldecoder("utf-8")()
            try:
                self._decoder.decode(frame.data, final=frame.fin)
            except UnicodeDecodeError:
                self._release()
                self.protocol.fail(CloseCode.INVALID_DATA, "text frame is not UTF-8")
                self._arm_closer()
                return
            if frame.fin:
                self._decoder = None
        elif opcode is Opcode.BINARY:
            self._decoder = None

    def _send_pending(self) -> None:
        """What the library has queued (pongs, the closing handshake); end of stream when it
        says so. A client that sends faster than it reads is not read until it has."""
        transport = self.transport
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            else:
                transport.close()
        if self.protocol.state is State.CLOSED:
            self._release()
            transport.close()
        elif self._paused and not self._read_paused and not transport.is_closing():
            self._read_paused = True
            transport.pause_reading()

    # what the server sends ---------------------------------------------------------------

    def flush(self) -> None:
        """The hub's wake-up: write what is new, end the stream if it is over."""
        opened = self.opened
        if opened is None or self.protocol.state is not State.OPEN:
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
            self._close(CloseCode.NORMAL_CLOSURE, after=data)
        elif subscriber.closed is not None:
            self._close(CLOSE_CODES.get(subscriber.closed, 1011), after=data)
        elif data:
            self.transport.write(data)

    def keepalive(self) -> None:
        """A ping per interval; a client that did not answer the last one is gone."""
        if self.protocol.state is not State.OPEN:
            return
        if self._pinged and not self._heard:
            self._release()
            self.transport.abort()
            return
        self._pinged, self._heard = True, False
        self.transport.write(_PING)

    def _close(self, code: int, reason: str = "", *, after: bytes = b"") -> None:
        """Our close frame (after the frames in `after`); the connection ends when the
        client answers, or after a wait."""
        if self.protocol.state is not State.OPEN:
            return
        self._release()
        self.protocol.send_close(code, reason)
        self.transport.write(after + b"".join(self.protocol.data_to_send()))
        self._arm_closer()

    def _arm_closer(self) -> None:
        if self._closer is None:
            self._closer = self.clock.call_later(CLOSE_TIMEOUT, self.transport.abort)

    def _release(self) -> None:
        self.runtime.keepalive.discard(self)
        opened = self.opened
        if opened is not None:
            opened.subscriber.on_ready = None
            opened.slot.close()
