"""Client-side protocol code of the client processes: a raw HTTP/1.1 client (requests one at
a time on a keep-alive connection, or one response streamed), WebSocket, socket.io, SSE,
long-poll and polling subscribers, webhook signing, and byte counting at the socket (what
the client process reads from and writes to its TCP sockets: HTTP heads, bodies, chunk
framing and WebSocket framing included, TCP/IP headers not).

Nothing here imports pixlive: the same code drives pixlive and the baseline server.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

ALNUM = string.ascii_letters + string.digits
FINAL_TYPES = {"payment.paid", "payment.expired", "payment.cancelled"}
SOURCES = 64  # client addresses 127.1.0.1 ... 127.1.0.64


class Meter:
    """Bytes seen by a set of client sockets (payload bytes, both ways)."""

    __slots__ = ("bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.bytes_in = self.bytes_out = 0

    def snapshot(self) -> dict[str, int]:
        return {"bytes_in": self.bytes_in, "bytes_out": self.bytes_out}

    def reset(self) -> None:
        self.bytes_in = self.bytes_out = 0


NULL_METER = Meter()


class CountingTransport:
    """An asyncio transport whose writes are counted."""

    def __init__(self, transport: asyncio.Transport, meter: Meter) -> None:
        self.transport, self.meter = transport, meter

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.meter.bytes_out += len(data)
        self.transport.write(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def counting_ws_class(meter: Meter) -> type[ClientConnection]:
    """A websockets ClientConnection (it is the asyncio Protocol) that counts its bytes."""

    class Counting(ClientConnection):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(CountingTransport(transport, meter))  # type: ignore[arg-type]

        def data_received(self, data: bytes) -> None:
            meter.bytes_in += len(data)
            super().data_received(data)

    return Counting


# Signed webhooks ----------------------------------------------------------------


def webhook_request(host: str, secret: str, txid: str, valor: str) -> bytes:
    """A signed API Pix webhook for one Pix to `txid`, with a fresh endToEndId."""
    now = datetime.now(UTC)
    tail = "".join(secrets.choice(ALNUM) for _ in range(11))
    e2e = "E00000000" + now.strftime("%Y%m%d%H%M") + tail  # 32 characters
    horario = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    pix = {"endToEndId": e2e, "txid": txid, "valor": valor, "horario": horario}
    body = orjson.dumps({"pix": [{**pix, "infoPagador": "bench"}]})
    t = int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "Pixlive-Signature": f"t={t},v1={mac}"}
    return build_request("POST", host, "/payments/pix/confirmation", headers, body)


def build_request(
    method: str, host: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# Raw HTTP/1.1 ----------------------------------------------------------------


class HttpError(Exception):
    pass


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return orjson.loads(self.body)


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise HttpError(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 connection. `send` writes a request and answers its whole response
    (Content-Length or chunked; one request at a time); with `on_chunk`, the response's
    body is handed on as it comes instead (b"" at its end), for a stream. No parsing
    library: the load generator must stay cheaper than the server."""

    def __init__(self, meter: Meter = NULL_METER, on_chunk: Callable[[bytes], None] | None = None):
        self.meter, self.on_chunk = meter, on_chunk
        self.transport: asyncio.Transport | None = None
        self.buf, self.body = bytearray(), bytearray()
        self.head: tuple[int, dict[str, str]] | None = None
        self.need = -1  # body bytes left; -2 chunked; -3 until the connection closes
        self.waiter: asyncio.Future[Response] | None = None
        loop = asyncio.get_event_loop()
        self.started: asyncio.Future[int] = loop.create_future()  # a stream's status
        self.closed: asyncio.Future[None] = loop.create_future()

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        meter: Meter = NULL_METER,
        local_addr: tuple[str, int] | None = None,
        on_chunk: Callable[[bytes], None] | None = None,
    ) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            lambda: cls(meter, on_chunk), host, port, local_addr=local_addr
        )
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        waiting = self.started if self.on_chunk else self.waiter
        if waiting is not None and not waiting.done():
            waiting.set_exception(HttpError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.meter.bytes_in += len(data)
        self.buf += data
        while self.step():
            pass

    def step(self) -> bool:
        buf = self.buf
        if self.head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            self.head = parse_head(bytes(buf[:end]))
            del buf[: end + 4]
            headers = self.head[1]
            if headers.get("transfer-encoding", "").lower() == "chunked":
                self.need = -2
            else:
                self.need = int(headers.get("content-length", -3 if self.on_chunk else 0))
            if not self.started.done():
                self.started.set_result(self.head[0])
            return True
        if self.need == -3:
            if buf:
                self.chunk(bytes(buf))
                buf.clear()
            return False
        if self.need >= 0:
            if len(buf) < self.need:
                return False
            self.chunk(bytes(buf[: self.need]))
            del buf[: self.need]
            self.finish()
            return True
        line_end = buf.find(b"\r\n")
        if line_end < 0:
            return False
        size = int(buf[:line_end].split(b";")[0], 16)
        if len(buf) < line_end + size + 4:
            return False
        self.chunk(bytes(buf[line_end + 2 : line_end + 2 + size]))
        del buf[: line_end + size + 4]
        if not size:
            self.finish()
        return True

    def chunk(self, data: bytes) -> None:
        if self.on_chunk is None:
            self.body += data
        elif data:
            self.on_chunk(data)

    def finish(self) -> None:
        assert self.head is not None
        (status, headers), self.head, self.need = self.head, None, -1
        if self.on_chunk is not None:
            self.on_chunk(b"")
            return
        body, self.body = bytes(self.body), bytearray()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(status, headers, body))

    def write(self, raw: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise HttpError("connection closed")
        self.meter.bytes_out += len(raw)
        self.transport.write(raw)

    def send(self, raw: bytes) -> asyncio.Future[Response]:
        """Writes a whole request; the future is its response."""
        assert self.waiter is None, "one request at a time"
        self.write(raw)
        self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter

    async def request(self, raw: bytes) -> Response:
        return await self.send(raw)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# Subscribers ----------------------------------------------------------------


class Subscriber:
    """One live subscriber of one charge: first the snapshot, then events. `ready` resolves
    at the snapshot; `on_event(event)` is called for each event; `done` resolves when the
    stream ends (final event or close)."""

    first_timeout: float | None = None  # long poll: to spread idle pollers over the period
    inflight = 0  # long poll: bytes of the request waiting for its answer

    def __init__(
        self,
        base: tuple[str, int],
        payment_id: str,
        meter: Meter,
        source: str | None = None,
        phase: float = 0.0,
    ) -> None:
        self.host, self.port = base
        self.payment_id, self.meter, self.phase = payment_id, meter, phase
        # the client address to connect from (127.x.y.z): many payers, not one address
        self.local_addr = (source, 0) if source else None
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[int] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.guarded())

    async def guarded(self) -> None:
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.error = exc
            if not self.ready.done():
                self.ready.set_exception(exc)
        finally:
            if not self.done.done():
                self.done.set_result(None)

    async def run(self) -> None:
        raise NotImplementedError

    def snapshot(self, last_event_id: int) -> None:
        if not self.ready.done():
            self.ready.set_result(last_event_id)

    def event(self, event: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(event)

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except BaseException:
                pass

    def ws(self, path: str) -> Any:
        return connect(
            f"ws://{self.host}:{self.port}{path}",
            compression=None,
            open_timeout=60,
            ping_interval=None,  # the server pings; the client only answers
            close_timeout=2,
            max_queue=16,
            create_connection=counting_ws_class(self.meter),
            local_addr=self.local_addr,
        )

    def get(self, path: str, headers: dict[str, str] | None = None) -> bytes:
        return build_request("GET", f"{self.host}:{self.port}", path, headers)


class WsSubscriber(Subscriber):
    """pixlive's WebSocket: `GET /payments/pix/{id}/ws`, JSON text frames."""

    async def run(self) -> None:
        async with self.ws(f"/payments/pix/{self.payment_id}/ws") as conn:
            async for message in conn:
                event = orjson.loads(message)
                if event.get("type") == "snapshot":
                    self.snapshot(event["last_event_id"])
                else:
                    self.event(event)


class SocketIoSubscriber(Subscriber):
    """The baseline's socket.io (protocol 5, Engine.IO 4) over WebSocket: connect to the
    namespace with the charge id in `auth`; the server joins the socket to the charge's
    room and emits `snapshot`, then `payment` events. Engine.IO pings ("2") are answered
    ("3") as socket.io clients do."""

    async def run(self) -> None:
        async with self.ws("/socket.io/?EIO=4&transport=websocket") as conn:
            opening = await conn.recv()
            if not isinstance(opening, str) or not opening.startswith("0"):
                raise HttpError(f"engine.io open expected, got {opening!r}")
            await conn.send("40" + orjson.dumps({"payment_id": self.payment_id}).decode())
            async for message in conn:
                assert isinstance(message, str)
                if message == "2":
                    await conn.send("3")
                elif message.startswith("42"):
                    name, data = orjson.loads(message[2:])
                    if name == "snapshot":
                        self.snapshot(data["last_event_id"])
                    else:
                        self.event(data)
                        if data.get("type") in FINAL_TYPES:
                            return
                elif message.startswith("44"):
                    raise HttpError(f"socket.io connect refused: {message}")
                elif message == "1":
                    return


class SseSubscriber(Subscriber):
    """pixlive's Server-Sent Events: `GET /payments/pix/{id}/events`."""

    async def run(self) -> None:
        pending = bytearray()
        ended = asyncio.get_running_loop().create_future()

        def on_chunk(data: bytes) -> None:
            if not data and not ended.done():
                ended.set_result(None)
            pending.extend(data)
            while (end := pending.find(b"\n\n")) >= 0:
                block = bytes(pending[:end]).decode()
                del pending[: end + 2]
                lines = block.split("\n")
                kind = next((x[6:].strip() for x in lines if x.startswith("event:")), "message")
                payload = [x[5:].lstrip() for x in lines if x.startswith("data:")]
                if not payload:
                    continue  # a comment (keepalive) or a retry: line
                data_obj = orjson.loads("\n".join(payload))
                if kind == "snapshot":
                    self.snapshot(data_obj["last_event_id"])
                else:
                    self.event(data_obj)

        conn = await HttpConnection.open(
            self.host, self.port, self.meter, self.local_addr, on_chunk
        )
        try:
            path = f"/payments/pix/{self.payment_id}/events"
            conn.write(self.get(path, {"Accept": "text/event-stream"}))
            if (status := await conn.started) != 200:
                raise HttpError(f"SSE answered {status}")
            await asyncio.wait([ended, conn.closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            conn.close()


class LongPollSubscriber(Subscriber):
    """pixlive's long poll: `GET /payments/pix/{id}/poll?after=N&timeout=S`, again and again
    on one keep-alive connection, resuming from the last event id it got. The first poll
    has timeout=0: it answers the snapshot at once, as a page that just loaded would ask."""

    poll_timeout = 25.0

    async def run(self) -> None:
        conn = await HttpConnection.open(self.host, self.port, self.meter, self.local_addr)
        after: int | None = None
        try:
            while True:
                query = "timeout=0"
                if after is not None:
                    wait, self.first_timeout = self.first_timeout or self.poll_timeout, None
                    query = f"after={after}&timeout={wait:g}"
                raw = self.get(f"/payments/pix/{self.payment_id}/poll?{query}")
                self.inflight = len(raw)
                answer = await conn.request(raw)
                self.inflight = 0
                if answer.status != 200:
                    raise HttpError(f"poll answered {answer.status}")
                doc = answer.json()
                final = False
                for event in doc["events"]:
                    after = max(after or 0, event["id"])
                    self.event(event)
                    final = final or event["type"] in FINAL_TYPES
                if after is None:
                    after = doc["snapshot"]["last_event_id"]
                    self.snapshot(after)
                if final or doc["snapshot"]["payment"]["status"] != "ACTIVE":
                    return
        finally:
            conn.close()


class PollingSubscriber(Subscriber):
    """The baseline of the baselines: `GET /payments/pix/{id}` (JSON) every `interval`
    seconds until the status changes; the change is the notification."""

    interval = 2.0

    async def run(self) -> None:
        conn = await HttpConnection.open(self.host, self.port, self.meter, self.local_addr)
        raw = self.get(f"/payments/pix/{self.payment_id}", {"Accept": "application/json"})
        try:
            while True:
                answer = await conn.request(raw)
                if answer.status != 200:
                    raise HttpError(f"GET charge answered {answer.status}")
                doc = answer.json()
                if doc["status"] != "ACTIVE":
                    paid = {"type": "payment.paid", "payment_id": self.payment_id}
                    return self.event({**paid, "status": doc["status"]})
                if not self.ready.done():
                    self.snapshot(doc.get("last_event_id", 0))
                    await asyncio.sleep(self.phase)
                else:
                    await asyncio.sleep(self.interval)
        finally:
            conn.close()


def source_address(i: int) -> str:
    """The i-th subscriber's client address: idle subscribers stand for many payers, and
    pixlive limits live connections per client address (500 by default)."""
    return f"127.1.0.{1 + i % SOURCES}"


SUBSCRIBERS: dict[str, type[Subscriber]] = {
    "ws": WsSubscriber,
    "sse": SseSubscriber,
    "longpoll": LongPollSubscriber,
    "polling": PollingSubscriber,
    "socketio": SocketIoSubscriber,
}
