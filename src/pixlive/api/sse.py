"""A charge's Server-Sent Events, answered before the framework: the route in
`api/streams.py` stays for the OpenAPI description and answers every request this path
leaves to it (a malformed query, an unknown charge, a refused slot, a database down).

Through the framework an idle SSE subscriber held a task group with two tasks (the
stream, and one listening for the client to leave), their coroutine frames through every
middleware, and the response objects: 37 KiB each. Here the request's own coroutine waits
for the client to leave; what there is to send is sent by a task that exists only while
there is something to send; and one timer for the process sends the keepalive comments.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from pixlive import metrics
from pixlive.api import headers
from pixlive.api.params import event_id, resume_point
from pixlive.api.streams import SSE_HEADERS, client_address, open_stream, sse_opening
from pixlive.realtime.hub import Subscriber
from pixlive.runtime import Runtime

PATH = re.compile(r"/payments/pix/([^/]+)/events")
_DELIVERED = metrics.events_delivered.labels("sse")
_KEEPALIVE = b": keepalive\n\n"
_START_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    *((name.lower().encode(), value.encode()) for name, value in SSE_HEADERS.items()),
    *headers.WITH_CSP,
]


def charge_stream(scope: Scope) -> str | None:
    """The charge id when this is a request for its event stream."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return None
    match = PATH.fullmatch(scope["path"])
    return match.group(1) if match else None


def _resume_point(scope: Scope) -> tuple[bool, int | None]:
    """(understood, after): anything unusual is left to the route, which validates it."""
    after: int | None = None
    for name, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
        after = event_id(value) if name == "after" else None
        if after is None:
            return False, None
    for name, raw in scope["headers"]:
        if name == b"last-event-id":
            resumed = event_id(raw.decode("latin-1"))
            if resumed is None:
                return False, None
            after = resume_point(resumed, after)
    return True, after


async def serve(
    runtime: Runtime, payment_id: str, scope: Scope, receive: Receive, send: Send
) -> bool:
    """Serves the stream; False (having sent nothing) when the route should answer."""
    understood, after = _resume_point(scope)
    if not understood:
        return False
    try:
        opened = await open_stream(
            runtime, payment_id, after, "sse", client_address(scope.get("client"))
        )
    except Exception:
        return False  # the route opens it again and answers the error in its shape
    stream = _Stream(runtime, opened.subscriber, send, opened.last_event_id)
    try:
        first, final = sse_opening(opened)
        await send({"type": "http.response.start", "status": 200, "headers": _START_HEADERS})
        await send({"type": "http.response.body", "body": first, "more_body": not final})
        if final:
            return True
        stream.start()
        # The request's own coroutine waits for the client to leave (or for the response
        # to end: the stream's last send completes it, and this returns).
        while (await receive())["type"] != "http.disconnect":
            pass
    except OSError:
        pass  # the client left while we wrote
    finally:
        await stream.stop()
        opened.slot.close()
    return True


class _Stream:
    """The live part: the hub's wake-up (and the keepalive timer) start a short-lived
    sender; an idle stream has none."""

    __slots__ = ("_comment", "_sender", "done", "runtime", "send", "sent", "subscriber")

    def __init__(self, runtime: Runtime, subscriber: Subscriber, send: Send, sent: int) -> None:
        self.runtime = runtime
        self.subscriber = subscriber
        self.send = send
        self.sent = sent
        self.done = False
        self._comment = False
        self._sender: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.subscriber.on_ready = self.wake
        self.runtime.sse_keepalive.add(self)
        if self.subscriber.pending or self.subscriber.closed is not None:
            self.wake()

    async def stop(self) -> None:
        self.done = True
        self.subscriber.on_ready = None
        self.runtime.sse_keepalive.discard(self)
        sender, self._sender = self._sender, None
        if sender is not None and sender is not asyncio.current_task():
            sender.cancel()
            try:
                await sender
            except (asyncio.CancelledError, OSError):
                pass

    def keepalive(self) -> None:
        self._comment = True
        self.wake()

    def wake(self) -> None:
        if self._sender is None and not self.done:
            self._sender = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while not self.done:
                chunks = [_KEEPALIVE] if self._comment else []
                self._comment = False
                end = False
                for item in self.subscriber.take():
                    if item.id > self.sent:
                        chunks.append(item.sse)
                        _DELIVERED.inc()
                        self.sent = item.id
                        if item.final:
                            end = True
                            break
                end = end or self.subscriber.closed is not None
                if not chunks and not end:
                    return
                if end:
                    self.done = True
                await self.send(
                    {"type": "http.response.body", "body": b"".join(chunks), "more_body": not end}
                )
        except OSError:
            self.done = True  # the client left; the request's coroutine cleans up
        finally:
            self._sender = None
