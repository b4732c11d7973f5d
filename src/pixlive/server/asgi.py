"""One request run through the ASGI app: the scope, `receive` and `send` (ASGI 3, HTTP)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pixlive.server import answer
from pixlive.server.peer import asgi_tls

if TYPE_CHECKING:
    from pixlive.server.request import Request

# The connection (server/http.py), which imports this module: typed loosely here.
HttpProtocol = Any

log = logging.getLogger("pixlive.server")

_DISCONNECT = {"type": "http.disconnect"}
_NO_BODY_STATUS = frozenset({204, 304})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_INTERNAL = answer.error_body("internal_error", "an unexpected error occurred")


class Cycle:
    __slots__ = (
        "chunked",
        "complete",
        "conn",
        "continue_owed",
        "head",
        "read_all",
        "request",
        "scope",
        "status",
    )

    def __init__(self, conn: HttpProtocol, request: Request) -> None:
        self.conn = conn
        self.request = request
        self.status = 0
        self.head: bytes | None = None  # written with the first body chunk
        self.chunked = False
        self.complete = False
        self.read_all = False
        self.continue_owed = request.expect_continue() and not request.complete
        self.scope = self._scope()

    def _scope(self) -> dict[str, Any]:
        conn, request = self.conn, self.request
        root = getattr(conn.config, "root_path", "") or ""
        extensions: dict[str, Any] = {}
        if conn.scheme == "https":
            tls: dict[str, Any] = {"server_cert": None, "tls_version": None, "cipher_suite": None}
            tls.update(asgi_tls(conn.certificate))
            extensions["tls"] = tls
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": request.version,
            "server": conn.server,
            "client": conn.client,
            "scheme": conn.scheme,
            "method": request.method,
            "root_path": root,
            "path": root + request.path,
            "raw_path": root.encode() + request.raw_path,
            "query_string": request.query,
            "headers": request.headers,
            "state": dict(conn.app_state),
            "extensions": extensions,
        }

    def start(self) -> None:
        tasks = self.conn.server_state.tasks
        task = asyncio.get_running_loop().create_task(self.run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def run(self) -> None:
        try:
            await self.conn.app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                log.error("the app failed on %s %s", self.request.method, self.request.path,
                          exc_info=exc)  # fmt: skip
            if self.request.started_response:
                self.conn._close()
            elif not self.request.gone_away:
                self.conn.respond(self.request, 500, _INTERNAL)
            if not isinstance(exc, Exception):
                raise
            return
        if not self.complete and not self.request.gone_away:
            if self.request.started_response:
                self.conn._close()
            else:
                log.error("the app returned without answering %s", self.request.path)
                self.conn.respond(self.request, 500, _INTERNAL)

    async def receive(self) -> dict[str, Any]:
        request = self.request
        if self.continue_owed:
            self.continue_owed = False
            if not request.started_response:
                self.conn.write(_CONTINUE)
        while True:
            if request.gone_away or self.complete:
                return _DISCONNECT
            if not self.read_all and (request.body or request.complete):
                break
            if request.waiter is None:
                request.waiter = asyncio.Event()
            request.waiter.clear()
            await request.waiter.wait()
        body = bytes(request.body)
        request.body.clear()
        self.conn.body_taken()
        more = not request.complete
        self.read_all = not more
        return {"type": "http.request", "body": body, "more_body": more}

    async def send(self, message: dict[str, Any]) -> None:
        request, conn = self.request, self.conn
        kind = message["type"]
        if request.gone_away or self.complete:
            return
        if not request.started_response:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind}")
            self._start(message)
            return
        if kind != "http.response.body":
            raise RuntimeError(f"expected http.response.body, got {kind}")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        out = []
        if self.head is not None:
            out.append(self.head)
            self.head = None
        if request.method != "HEAD" and self.status not in _NO_BODY_STATUS:
            if self.chunked:
                if body:
                    out.append(b"%x\r\n%s\r\n" % (len(body), body))
                if not more:
                    out.append(b"0\r\n\r\n")
            elif body:
                out.append(body)
        if out:
            conn.write(b"".join(out))
        if not more:
            self.complete = True
            request.answered = True
            request.wake()
            conn.finished(request)
        else:
            await conn.drain()

    def _start(self, message: dict[str, Any]) -> None:
        request, conn = self.request, self.conn
        self.status = status = int(message["status"])
        request.started_response = True
        self.continue_owed = False
        headers: list[tuple[bytes, bytes]] = []
        length = None
        for name, value in message.get("headers", []):
            lower = name.lower()
            if lower == b"content-length":
                length = value
            elif lower == b"connection" and value.lower() == b"close":
                request.keep_alive = False
                continue
            elif lower == b"transfer-encoding":
                continue  # ours to decide
            headers.append((lower, value))
        if length is not None:
            headers.append((b"content-length", length))
        elif request.method != "HEAD" and status not in _NO_BODY_STATUS and status >= 200:
            if request.version == "1.1":
                self.chunked = True
                headers.append((b"transfer-encoding", b"chunked"))
            else:
                request.keep_alive = False  # the body ends when the connection does
        if not request.complete:
            # The app answered before reading the whole body: the rest cannot be told
            # from the next request without reading it, so the connection ends here.
            request.keep_alive = False
        conn.log_access(request, status)
        self.head = answer.head(
            status, headers, conn.server_state.default_headers, close=not request.keep_alive,
            length=None,
        )  # fmt: skip
