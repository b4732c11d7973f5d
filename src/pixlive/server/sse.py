"""A charge's Server-Sent Events, written by the connection.

Through the framework an idle SSE subscriber held a task group with two tasks, their
coroutine frames through every middleware and the response objects (37 KiB); through a
bare ASGI handler, its coroutine and a sender task's frames (15.7 KiB,
docs/performance-log.md). Here it is this object and its hub subscription: the hub's
wake-up and the process's keepalive timer write chunks straight to the socket. After the
final event the response ends and the connection takes its next request.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from pixlive import metrics
from pixlive.adapters.errors import DatabaseUnavailable
from pixlive.api import headers as security
from pixlive.api.params import EVENT_ID_RULE, event_id, resume_point
from pixlive.api.streams import SSE_HEADERS, Opened, open_stream, sse_opening
from pixlive.domain.errors import ChargeNotFound
from pixlive.domain.ids import is_charge_id
from pixlive.realtime.admission import Refused
from pixlive.runtime import Runtime
from pixlive.server import answer

if TYPE_CHECKING:
    from pixlive.server.request import Request

# The connection (server/http.py), which imports this module: typed loosely here.
HttpProtocol = Any

_DELIVERED = metrics.events_delivered.labels("sse")
_KEEPALIVE = b"d\r\n: keepalive\n\n\r\n"  # one chunk of 13 bytes
_END = b"0\r\n\r\n"
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    *((name.lower().encode(), value.encode()) for name, value in SSE_HEADERS.items()),
    (b"transfer-encoding", b"chunked"),
    *security.WITH_CSP,
]
_NO_STORE = [(b"cache-control", b"no-store")]


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _resume_point(request: Request) -> tuple[bool, int | None]:
    """(valid, after) from `?after=N` and `Last-Event-ID`, as the route's `EventId` reads them."""
    after: int | None = None
    for name, value in parse_qsl(request.query.decode("latin-1"), keep_blank_values=True):
        if name == "after":
            after = event_id(value)
            if after is None:
                return False, None
    raw = request.header(b"last-event-id")
    if raw is not None:
        resumed = event_id(raw.decode("latin-1"))
        if resumed is None:
            return False, None
        after = resume_point(resumed, after)
    return True, after


def start(conn: HttpProtocol, request: Request) -> None:
    runtime = conn.runtime
    assert runtime is not None

    def deny(status: int, code: str, message: str, extra: list[tuple[bytes, bytes]]) -> None:
        conn.respond(request, status, answer.error_body(code, message), [*_NO_STORE, *extra])

    origin = (request.header(b"origin") or b"").lower().rstrip(b"/")
    if origin not in conn.limits.origins:
        deny(403, "forbidden_origin", "pages of this origin may not open this stream", [])
        return
    payment_id = request.stream_id()
    if payment_id is None or not is_charge_id(payment_id):
        deny(404, "not_found", "no charge with this id", [])
        return
    valid, after = _resume_point(request)
    if not valid:
        deny(422, "invalid_request", f"after and Last-Event-ID: each {EVENT_ID_RULE}", [])
        return
    stream = ChargeEvents(conn, request, runtime)
    conn.stream = stream
    stream.opening = asyncio.get_running_loop().create_task(
        stream.open(payment_id, after, conn.client_address(request))
    )


class ChargeEvents:
    __slots__ = ("conn", "opened", "opening", "paused", "request", "runtime", "sent")

    def __init__(self, conn: HttpProtocol, request: Request, runtime: Runtime) -> None:
        self.conn: HttpProtocol | None = conn
        self.request = request
        self.runtime = runtime
        self.opened: Opened | None = None
        self.opening: asyncio.Task[None] | None = None
        self.paused = conn.write_paused
        self.sent = 0

    async def open(self, payment_id: str, after: int | None, client: str) -> None:
        conn, request = self.conn, self.request
        assert conn is not None
        status, code, message, extra = 0, "", "", []
        try:
            opened = await open_stream(self.runtime, payment_id, after, "sse", client)
        except ChargeNotFound:
            status, code, message = 404, "not_found", "no charge with this id"
        except Refused as exc:
            status, code, message = 429, exc.code, exc.message
            extra = [(b"retry-after", str(exc.retry_after).encode())]
        except DatabaseUnavailable:
            status, code = 503, "database_unavailable"
            message = "the database is unreachable; retry later"
            extra = [(b"retry-after", b"5")]
        finally:
            self.opening = None
        if status:
            self._detach()
            conn.respond(request, status, answer.error_body(code, message), [*_NO_STORE, *extra])
            return
        if self.conn is None:  # the client left while the snapshot was read
            opened.slot.close()
            return
        self.opened = opened
        self.sent = opened.last_event_id
        request.started_response = True
        conn.log_access(request, 200)
        first, final = sse_opening(opened)
        head = answer.head(
            200, _HEADERS, conn.server_state.default_headers, close=not request.keep_alive,
            length=None,
        )  # fmt: skip
        if final:
            self._end(head + _chunk(first))
            return
        conn.write(head + _chunk(first))
        self.runtime.sse_keepalive.add(self)
        opened.subscriber.on_ready = self.flush
        self.flush()

    def flush(self) -> None:
        """The hub's wake-up: write what is new; end the response after a final event."""
        opened = self.opened
        if opened is None or self.conn is None:
            return
        subscriber = opened.subscriber
        if self.paused and subscriber.closed is None:
            return  # resume_writing comes back here; the hub drops a client that stays behind
        out = []
        final = False
        for item in subscriber.take():
            if item.id > self.sent:
                out.append(_chunk(item.sse))
                self.sent = item.id
                if item.final:
                    final = True
                    break
        if out:
            _DELIVERED.inc(len(out))
        if final or subscriber.closed is not None:
            self._end(b"".join(out))
        elif out:
            self.conn.write(b"".join(out))

    def keepalive(self) -> None:
        if self.conn is not None and not self.paused:
            self.conn.write(_KEEPALIVE)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.flush()

    def shutdown(self) -> None:
        self.request.keep_alive = False
        if self.request.started_response:
            self._end(b"")
            return
        if self.opening is not None:
            self.opening.cancel()
            self.opening = None
        conn = self._detach()
        if conn is not None:
            body = answer.error_body("unavailable", "the server is stopping")
            conn.respond(self.request, 503, body, _NO_STORE)

    def lost(self) -> None:
        """The client left."""
        if self.opening is not None:
            self.opening.cancel()
            self.opening = None
        self._detach()

    def _end(self, data: bytes) -> None:
        conn = self._detach()
        if conn is None:
            return
        conn.write(data + _END)
        self.request.answered = True
        conn.finished(self.request)

    def _detach(self) -> HttpProtocol | None:
        conn, self.conn = self.conn, None
        self.runtime.sse_keepalive.discard(self)
        opened, self.opened = self.opened, None
        if opened is not None:
            opened.subscriber.on_ready = None
            opened.slot.close()
        if conn is not None and conn.stream is self:
            conn.stream = None
        return conn
