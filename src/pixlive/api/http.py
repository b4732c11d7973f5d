"""uvicorn's HTTP protocol, with the PSP's webhook answered by the connection itself.

Through ASGI every delivery costs a task, a request-response cycle, the scope and its
messages, the app's dispatch, and two socket writes: under load, about a third of the
server's time per confirmation (docs/performance-log.md). Here the parser's callbacks
collect the body, the delivery is checked and queued for the group commit right in the
callback, and the commit's future writes the whole response in one `write`.

Everything else, and any delivery that is not plain (pipelined behind another request,
`Expect: 100-continue`, an escaped path, a concurrency limit, no runtime yet), takes
uvicorn's own path to the ASGI app, whose fast path (`webhook.fast_path`) gives the same
answers: the same functions decide them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string
from uvicorn.server import ServerState

from pixlive.adapters.errors import DatabaseUnavailable
from pixlive.api import webhook
from pixlive.runtime import Runtime
from pixlive.services.confirmation import IncomingPix, Outcome

log = logging.getLogger("pixlive.webhook")

_PATHS = frozenset(path.encode() for path in webhook.PATHS)
_INTERNAL = webhook.error(500, "internal_error", "an unexpected error occurred")
_HEADERS = b"".join(b"%s: %s\r\n" % pair for pair in webhook.JSON_HEADERS)


class _Signal:
    """What uvicorn's protocol calls `message_event.set()` on; nothing waits here."""

    __slots__ = ()

    def set(self) -> None:
        pass


_SIGNAL = _Signal()


class Delivery:
    """One webhook request on its way: the `cycle` the protocol sees while it is open.

    It has the attributes uvicorn's protocol reads and writes on a cycle
    (`response_complete`, `keep_alive`, `disconnected`, `message_event`)."""

    __slots__ = ("body", "disconnected", "keep_alive", "message_event", "response_complete")

    def __init__(self, keep_alive: bool) -> None:
        self.body = bytearray()
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_complete = False
        self.message_event = _SIGNAL


class HttpProtocol(HttpToolsProtocol):
    """The HTTP protocol class `pixlive serve` gives uvicorn (`http=`)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        runtime = app_state.get("runtime")
        # No runtime (another app, or a lifespan that failed): every request takes
        # uvicorn's path.
        self._runtime: Runtime | None = runtime if isinstance(runtime, Runtime) else None
        self._max_body = self._runtime.settings.max_body_bytes if self._runtime else 0

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        # The connection is the WebSocket protocol's now, and this one is dropped. Its
        # parser holds its callbacks (methods of this object): a cycle that only the
        # collector would free, along with the transport and the socket it holds, one per
        # page that subscribed. uvicorn cuts it in `connection_lost`, which this object no
        # longer gets.
        self.parser = None  # type: ignore[assignment]
        self.flow = None  # type: ignore[assignment]

    def on_headers_complete(self) -> None:
        path = self._plain_delivery()
        if path is None:
            super().on_headers_complete()
        else:
            self._start_delivery(*path)

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if not isinstance(cycle, Delivery):
            super().on_body(body)
        elif not cycle.response_complete:
            cycle.body += body
            if len(cycle.body) > self._max_body:
                self._too_large(cycle)

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if not isinstance(cycle, Delivery):
            super().on_message_complete()
        elif not cycle.response_complete:
            self._deliver(cycle)

    # the delivery ------------------------------------------------------------------------

    def _plain_delivery(self) -> tuple[bytes, bytes] | None:
        """The path and query of a delivery this connection can answer alone."""
        parser = self.parser
        if (
            self._runtime is None
            or parser.get_method() != b"POST"
            or self.expect_100_continue
            or self.limit_concurrency is not None
            or self.root_path
            or parser.should_upgrade()
            or (self.cycle is not None and not self.cycle.response_complete)
        ):
            return None
        try:
            url = httptools.parse_url(self.url)
        except httptools.HttpParserError:
            return None  # uvicorn's own path answers it as it would
        if url.path not in _PATHS:
            return None
        return url.path, url.query or b""

    def _start_delivery(self, path: bytes, query: bytes) -> None:
        parser = self.parser
        scope = self.scope
        scope["method"] = "POST"
        scope["path"] = path.decode("ascii")
        scope["raw_path"] = path
        scope["query_string"] = query
        http_version = parser.get_http_version()
        if http_version != "1.1":
            scope["http_version"] = http_version
        cycle = Delivery(keep_alive=http_version != "1.0" and parser.should_keep_alive())
        self.cycle = cycle  # type: ignore[assignment]
        for name, value in self.headers:
            if name == b"content-length" and value.isdigit() and int(value) > self._max_body:
                self._too_large(cycle)
                return

    def _too_large(self, cycle: Delivery) -> None:
        cycle.keep_alive = False
        status, payload, _ = webhook.error(
            413, "payload_too_large", f"bodies are limited to {self._max_body} bytes"
        )
        self._respond(cycle, status, payload, [])

    def _deliver(self, cycle: Delivery) -> None:
        assert self._runtime is not None
        try:
            found = webhook.credentials(self.headers, self.scope["query_string"])
            if len(found) == 3:
                self._respond(cycle, *found)
                return
            signature, token = found
            checked = webhook.check_delivery(self._runtime, bytes(cycle.body), signature, token)
            cycle.body = bytearray()
            if isinstance(checked, tuple):
                self._respond(cycle, *checked)
                return
            future = webhook.submit_delivery(self._runtime, checked)
        except DatabaseUnavailable as exc:
            self._respond(cycle, *self._failure(exc))
            return
        except Exception:  # a bug: the PSP gets the error shape and retries
            log.exception("webhook failed")
            self._respond(cycle, *_INTERNAL)
            return
        future.add_done_callback(lambda done: self._committed(cycle, checked, done))

    def _committed(
        self, cycle: Delivery, incoming: list[IncomingPix], done: asyncio.Future[list[Outcome]]
    ) -> None:
        exc = done.exception()
        if exc is None:
            try:
                answer = webhook.answer_outcomes(incoming, done.result())
            except Exception:
                log.exception("webhook failed")
                answer = _INTERNAL
        else:
            answer = self._failure(exc)
        self._respond(cycle, *answer)

    @staticmethod
    def _failure(exc: BaseException) -> webhook.Answer:
        answer = webhook.answer_failure(exc)
        if answer is None:
            log.error("webhook failed", exc_info=exc)
            answer = _INTERNAL
        return answer

    def _respond(
        self, cycle: Delivery, status: int, payload: bytes, extra: list[tuple[bytes, bytes]]
    ) -> None:
        """The whole response in one write; then the connection goes on (or closes) as
        uvicorn's own cycle would leave it."""
        if cycle.response_complete:
            return
        cycle.response_complete = True
        transport = self.transport
        if cycle.disconnected or transport.is_closing():
            return
        if self.access_log:
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(self.scope),
                "POST",
                get_path_with_query_string(self.scope),
                self.scope["http_version"],
                status,
            )
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.append(b"%s: %s\r\n" % (name, value))
        head.append(_HEADERS)
        for name, value in extra:
            head.append(b"%s: %s\r\n" % (name, value))
        if not cycle.keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"content-length: %d\r\n\r\n" % len(payload))
        head.append(payload)
        transport.write(b"".join(head))
        if not cycle.keep_alive:
            transport.close()
        self.on_response_complete()
