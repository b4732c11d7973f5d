"""The HTTP/1.1 connection `pixlive serve` hands uvicorn (`Config(http=...)`).

httptools parses; this object decides. Each request, once its head is in, is one of:
- the PSP's webhook, answered here (the only way into it): the body is collected by the
  parser's callbacks, the delivery checked and queued for the group commit right there,
  and the commit's future writes the whole response in one `write`;
- a charge's WebSocket or Server-Sent Events, served by a stream object on this socket
  (server/websocket.py, server/sse.py);
- anything else: the ASGI app (server/asgi.py).

Requests are answered in order: a pipelined request waits in `pipeline` until the one
before it is answered, and nothing behind an answer that closes the connection runs.

The edge's limits (server/limits.py) hold here: the request line, each header, all the
headers and their number; how long the head, each body read and an idle keep-alive may
take; how many connections the process holds.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote

import httptools

from pixlive.api.webhook import ClientCertificate
from pixlive.realtime.clock import LOOP_CLOCK, Clock, Timer
from pixlive.runtime import Runtime
from pixlive.server import answer, redact
from pixlive.server.limits import Limits
from pixlive.server.peer import TrustedProxies, certificate
from pixlive.server.request import Kind, Request, classify

log = logging.getLogger("pixlive.server")
access_log = logging.getLogger("uvicorn.access")

# Body bytes a request may buffer before the socket stops being read (the app reads slower).
HIGH_WATER = 1 << 16
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_FULL = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_FULL_WARNING_EVERY = 10.0  # seconds between two warnings that the connection cap is reached
_FD_RESERVE = 64  # descriptors kept for the database, the bus, logs and the listening socket


class Refusal(Exception):
    """Raised from a parser callback: answer this and close."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _Stop(Exception):
    """Raised from a parser callback once the connection is closing: parse no further."""


class Shared:
    """What every connection of a process shares: the limits, the proxies trusted, when
    the cap was last reported."""

    __slots__ = ("cap", "cap_name", "full_warned", "limits", "proxies")

    def __init__(self, limits: Limits, proxies: TrustedProxies) -> None:
        self.limits = limits
        self.proxies = proxies
        self.full_warned = -_FULL_WARNING_EVERY
        # Out of file descriptors, uvloop's accept drops connections without a word: stop
        # short of the open-files limit, and say so.
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        by_files = soft - _FD_RESERVE if soft != resource.RLIM_INFINITY else limits.connections
        if by_files < limits.connections:
            self.cap, self.cap_name = max(by_files, 1), f"the open-files limit ({soft}, ulimit -n)"
        else:
            self.cap, self.cap_name = limits.connections, "PIXLIVE_MAX_CONNECTIONS"


_SHARED: weakref.WeakKeyDictionary[Any, Shared] = weakref.WeakKeyDictionary()


class HttpProtocol(asyncio.Protocol):
    """One client connection, for uvicorn's server (duck-typed to what it gives and asks
    of its protocol class: the constructor's arguments, `server_state.connections`,
    `server_state.tasks`, `server_state.default_headers`, `shutdown()`)."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        clock: Clock | None = None,
        limits: Limits | None = None,
    ) -> None:
        if not getattr(config, "loaded", True):
            config.load()
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.app = config.loaded_app
        runtime = app_state.get("runtime")
        self.runtime: Runtime | None = runtime if isinstance(runtime, Runtime) else None
        shared = None if limits is not None else _SHARED.get(server_state)
        if shared is None:
            if limits is None:
                limits = Limits.of(self.runtime.settings) if self.runtime else Limits()
            shared = Shared(limits, TrustedProxies(getattr(config, "forwarded_allow_ips", None)))
            _SHARED[server_state] = shared
        self.shared = shared
        self.limits = shared.limits
        self.clock = clock or LOOP_CLOCK
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.certificate: ClientCertificate | None = None
        self.current: Request | None = None  # being answered
        self.pipeline: deque[Request] = deque()  # parsed, waiting their turn
        self.parsing: Request | None = None  # its head or body still coming in
        self.closing = False
        self.reading = True  # False once a request is refused: what follows is not parsed
        self.read_paused = False
        self.write_paused = False
        self.writable: asyncio.Event | None = None
        self.stream: Any = None  # the charge stream that took this connection over
        self._url = bytearray()
        self._headers: list[tuple[bytes, bytes]] = []
        self._headers_size = 0
        self._in_head = False
        self._head_seen = 0
        self._timer: Timer | None = None

    # asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike.
        self.transport = cast(asyncio.Transport, transport)
        connections = self.server_state.connections
        if len(connections) >= self.shared.cap:
            self._full()
            return
        connections.add(self)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))
            self.peer = self.client[0]
        sock = transport.get_extra_info("sockname")
        if isinstance(sock, tuple) and len(sock) >= 2:
            self.server = (str(sock[0]), int(sock[1]))
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.scheme = "https"
            self.certificate = certificate(ssl_object)
        self._arm(self.limits.head_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._disarm()
        if self.stream is not None:
            self.stream.lost()
            self.stream = None
        self.server_state.connections.discard(self)
        for request in (self.current, *self.pipeline):
            if request is not None:
                request.gone()
        self.pipeline.clear()
        self.current = self.parsing = None
        self.parser = None  # its callbacks are this object's methods: no cycle left behind
        if self.writable is not None:
            self.writable.set()

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if self.closing or parser is None or not self.reading:
            return
        if self._in_head or self.parsing is None:
            self._head_seen += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgrade()
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, Refusal):
                self._refuse(cause.status, cause.code, cause.message)
            elif not isinstance(cause, _Stop):
                log.error("HTTP parser callback failed", exc_info=cause)
                self._refuse(500, "internal_error", "an unexpected error occurred")
            return
        except httptools.HttpParserError:
            self._refuse(400, "invalid_request", "malformed HTTP request")
            return
        if self._in_head and self._head_seen > self.limits.head + HIGH_WATER:
            # An unfinished header grows inside the parser until it ends: bound it here.
            self._refuse(431, "headers_too_large", "the request's headers are too large")

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.stream is not None:
            self.stream.pause_writing()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.writable is not None:
            self.writable.set()
        if self.stream is not None:
            self.stream.resume_writing()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: idle connections close now, busy ones after their
        answer, streams end as their own shutdown says."""
        if self.stream is not None:
            self.stream.shutdown()
            return
        if self.current is None or self.current.kind is Kind.SSE:
            self._close()
        else:
            for request in (self.current, *self.pipeline):
                request.keep_alive = False

    # the parser's callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.closing or not self.reading:
            raise _Stop
        self._in_head = True
        self._url.clear()
        self._headers = []
        self._headers_size = 0
        self.parsing = None
        if self.current is None and not self.pipeline:
            self._arm(self.limits.head_timeout, self._head_timed_out)

    def on_url(self, url: bytes) -> None:
        if len(self._url) + len(url) > self.limits.request_line:
            raise Refusal(414, "uri_too_long", "the request target is too long")
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.closing or not self.reading:
            raise _Stop
        limits = self.limits
        size = len(name) + len(value)
        if size > limits.header:
            raise Refusal(431, "headers_too_large", "a request header is too large")
        self._headers_size += size
        if self._headers_size > limits.headers_total:
            raise Refusal(431, "headers_too_large", "the request's headers are too large")
        if not self._in_head:
            return  # a chunked body's trailer: bounded like a head, and never read
        if len(self._headers) >= limits.headers:
            raise Refusal(431, "headers_too_large", "too many request headers")
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        if self.closing or parser is None:
            raise _Stop
        self._in_head = False
        self._head_seen = 0
        try:
            url = httptools.parse_url(bytes(self._url))
        except httptools.HttpParserInvalidURLError:
            raise Refusal(400, "invalid_request", "malformed request target") from None
        raw_path = url.path or b"/"
        version = parser.get_http_version()
        request = Request(
            method=parser.get_method().decode("ascii"),
            raw_path=raw_path,
            path=unquote(raw_path.decode("latin-1")),
            query=url.query or b"",
            headers=self._headers,
            version=version,
            keep_alive=version != "1.0" and parser.should_keep_alive(),
            upgrade=parser.should_upgrade(),
        )
        request.kind = classify(request, self.runtime is not None)
        self.parsing = request
        self._disarm()
        if self.current is None:
            self.current = request
        else:
            self.pipeline.append(request)
        if request.kind is Kind.WEBHOOK and request.declared_length() > self.limits.body:
            self._too_large(request)
            return
        if request is self.current:
            self._start(request)
        if self.reading and not self.closing and not request.complete:
            self._arm(self.limits.body_timeout, self._body_timed_out)

    def on_body(self, body: bytes) -> None:
        request = self.parsing
        if self.closing or request is None or not self.reading:
            raise _Stop
        self._arm(self.limits.body_timeout, self._body_timed_out)
        request.received += len(body)
        if request.kind is Kind.APP:
            request.body += body
            request.wake()
            if len(request.body) > HIGH_WATER:
                self._pause_reading()
        elif request.received > self.limits.body:
            self._too_large(request)
            raise _Stop
        elif request.kind is Kind.WEBHOOK:
            request.body += body
        # Streams and upgrades read no body: it is counted against the limit, not kept.

    def on_message_complete(self) -> None:
        request = self.parsing
        if self.closing or request is None or not self.reading:
            raise _Stop
        self.parsing = None
        self._disarm()
        request.complete = True
        request.wake()
        if request is self.current and request.kind is Kind.WEBHOOK:
            self._deliver(request)

    # answering -------------------------------------------------------------------------

    def _start(self, request: Request) -> None:
        """The request's turn has come."""
        kind = request.kind
        if request.too_large:
            self._too_large(request)
        elif kind is Kind.APP:
            from pixlive.server.asgi import Cycle

            Cycle(self, request).start()
        elif kind is Kind.WEBHOOK:
            if request.expect_continue() and not request.complete:
                self.write(_CONTINUE)
            if request.complete:
                self._deliver(request)
        elif kind is Kind.SSE:
            from pixlive.server import sse

            sse.start(self, request)
        # An upgrade starts when the parser stops at it (`_upgrade`).

    def finished(self, request: Request) -> None:
        """`request` is answered: go on to the next one, or close."""
        if request is not self.current:
            return
        self.current = None
        if not request.keep_alive or self.closing:
            self._close()
            return
        if self.pipeline:
            self.current = self.pipeline.popleft()
            self._start(self.current)
        elif self.parsing is None and not self._in_head:
            self._arm(self.limits.keepalive_timeout, self._close)
        if self.read_paused and not self.pipeline:
            self._resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def default_headers(self) -> list[tuple[bytes, bytes]]:
        return list(self.server_state.default_headers)

    def respond(
        self,
        request: Request,
        status: int,
        payload: bytes,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """A whole JSON answer to `request`, in one write; then the next request."""
        if request.answered:
            return
        request.answered = True
        if request.gone_away:
            return
        self.log_access(request, status)
        self.write(
            answer.whole(
                status,
                payload,
                self.server_state.default_headers,
                close=not request.keep_alive,
                extra=extra,
                body=request.method != "HEAD",
            )
        )
        self.finished(request)

    def log_access(self, request: Request, status: int) -> None:
        if getattr(self.config, "access_log", True) and access_log.isEnabledFor(logging.INFO):
            client = self.client_address(request)
            port = self.client[1] if self.client else 0
            access_log.info(
                '%s - "%s %s HTTP/%s" %d',
                f"{client}:{port}",
                request.method,
                redact.target(request.path, request.query),
                request.version,
                status,
            )

    def client_address(self, request: Request) -> str:
        if not getattr(self.config, "proxy_headers", False):
            return self.peer or "unknown"
        return self.shared.proxies.client(self.peer, request.header(b"x-forwarded-for")) or (
            "unknown"
        )

    def _refuse(self, status: int, code: str, message: str) -> None:
        """A request that breaks the protocol or a limit: answered, and the connection
        closed; nothing parsed after it runs."""
        request = self.parsing or self.current
        self.closing = True
        self.pipeline.clear()
        if request is not None and request.started_response:
            self._close()
            return
        if request is not None:
            request.answered = True
            self.log_access(request, status)
        self.write(answer.error(status, code, message, self.server_state.default_headers))
        self._close()

    def _too_large(self, request: Request) -> None:
        """413, and nothing read or run after it."""
        request.keep_alive = False
        request.too_large = True
        self.parsing = None
        self.reading = False
        self._disarm()
        while self.pipeline and self.pipeline[-1] is not request:
            self.pipeline.pop()
        if request is not self.current:
            return  # answered in its turn (`_start`), and the connection closed after it
        self.closing = True
        self.respond(
            request,
            413,
            answer.error_body(
                "payload_too_large", f"bodies are limited to {self.limits.body} bytes"
            ),
        )

    def _close(self) -> None:
        self.closing = True
        self._disarm()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _full(self) -> None:
        assert self.transport is not None
        self.closing = True
        now = self.clock.time()
        if now - self.shared.full_warned >= _FULL_WARNING_EVERY:
            self.shared.full_warned = now
            log.warning(
                "refusing connections: %d open, the cap set by %s",
                len(self.server_state.connections),
                self.shared.cap_name,
            )
        self.transport.write(_FULL)
        self.transport.close()

    # the webhook ---------------------------------------------------------------------

    def _deliver(self, request: Request) -> None:
        from pixlive.server import webhook

        webhook.deliver(self, request)

    # upgrades -------------------------------------------------------------------------

    def _upgrade(self) -> None:
        request = self.parsing or self.current
        if request is None or request.kind is not Kind.WEBSOCKET:
            # Upgrades to anything else are not served; the parser cannot go past one.
            if request is not None and not request.answered:
                request.keep_alive = False
                if request is self.current:
                    return  # answered as a plain request, then closed
            self._close()
            return
        if request is not self.current:
            self._refuse(400, "invalid_request", "an upgrade must not be pipelined")
            return
        from pixlive.server import websocket

        self._disarm()
        self.parser = None
        websocket.start(self, request)

    # flow control ------------------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.read_paused and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()

    def body_taken(self) -> None:
        """The app took the buffered body: read on."""
        if self.read_paused and not self.pipeline:
            self._resume_reading()

    async def drain(self) -> None:
        if self.write_paused and not self.closing:
            if self.writable is None:
                self.writable = asyncio.Event()
            self.writable.clear()
            await self.writable.wait()

    # timers ------------------------------------------------------------------------------

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.clock.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        if self.closing:
            return
        if self._in_head:
            self._refuse(408, "request_timeout", "the request head took too long")
        else:
            self._close()  # nothing was sent: no answer owed

    def _body_timed_out(self) -> None:
        self._timer = None
        if not self.closing:
            self._refuse(408, "request_timeout", "the request body stopped arriving")
