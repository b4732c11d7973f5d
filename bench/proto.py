"""Client-side protocol code shared by every client process: a raw HTTP/1.1 keep-alive
client, an SSE reader, WebSocket and socket.io subscribers, webhook signing, and byte
counting at the socket (what the client process reads from and writes to its TCP sockets:
HTTP headers, bodies, chunk framing and WebSocket framing included, TCP/IP headers not).

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

_ALNUM = string.ascii_letters + string.digits
SIGNATURE_HEADER = "Pixlive-Signature"


# Counting bytes ----------------------------------------------------------------


class Meter:
    """Bytes and TCP segments seen by a set of client sockets (payload bytes, both ways)."""

    __slots__ = ("bytes_in", "bytes_out", "reads", "writes")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
        self.reads = 0
        self.writes = 0

    def snapshot(self) -> dict[str, int]:
        return {
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "reads": self.reads,
            "writes": self.writes,
        }

    def reset(self) -> None:
        self.bytes_in = self.bytes_out = self.reads = self.writes = 0


NULL_METER = Meter()


class _CountingTransport:
    """Wraps an asyncio transport so that every write is counted."""

    def __init__(self, transport: asyncio.Transport, meter: Meter) -> None:
        self._transport = transport
        self._meter = meter

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._meter.bytes_out += len(data)
        self._meter.writes += 1
        self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def counting_ws_class(meter: Meter) -> type[ClientConnection]:
    """A websockets ClientConnection (it is the asyncio Protocol) that counts its bytes."""

    class Counting(ClientConnection):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(_CountingTransport(transport, meter))  # type: ignore[arg-type]

        def data_received(self, data: bytes) -> None:
            meter.bytes_in += len(data)
            meter.reads += 1
            super().data_received(data)

    return Counting


# Signing and bodies ----------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def end_to_end_id() -> str:
    """E + an 8-digit ISPB + yyyyMMddHHmm + 11 random characters: 32 in all."""
    now = datetime.now(UTC)
    return (
        "E00000000"
        + now.strftime("%Y%m%d%H%M")
        + "".join(secrets.choice(_ALNUM) for _ in range(11))
    )


def webhook_body(txid: str, valor: str, e2e: str | None = None) -> bytes:
    now = datetime.now(UTC)
    return orjson.dumps(
        {
            "pix": [
                {
                    "endToEndId": e2e or end_to_end_id(),
                    "txid": txid,
                    "valor": valor,
                    "horario": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "infoPagador": "bench",
                }
            ]
        }
    )


def build_request(
    method: str, host: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def webhook_request(host: str, secret: str, txid: str, valor: str) -> bytes:
    body = webhook_body(txid, valor)
    return build_request(
        "POST",
        host,
        "/payments/pix/confirmation",
        {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body)},
        body,
    )


# Raw HTTP/1.1 ----------------------------------------------------------------


class HttpError(Exception):
    pass


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise HttpError(f"bad status line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time, responses with a
    Content-Length or chunked (read whole). Fast: no parsing library, no per-request
    allocation beyond the body."""

    def __init__(self, meter: Meter = NULL_METER) -> None:
        self.meter = meter
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[Response] | None = None
        self._head: tuple[int, dict[str, str]] | None = None
        self._need = -1  # body length, or -2 for chunked
        self.closed = asyncio.get_event_loop().create_future()

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        meter: Meter = NULL_METER,
        local_addr: tuple[str, int] | None = None,
    ) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(
            lambda: cls(meter), host, port, local_addr=local_addr
        )
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.meter.bytes_in += len(data)
        self.meter.reads += 1
        self._buf += data
        self._parse()

    def _parse(self) -> None:
        while True:
            if self._head is None:
                end = self._buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                self._head = _parse_head(bytes(self._buf[:end]))
                del self._buf[: end + 4]
                headers = self._head[1]
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    self._need = -2
                    self._chunks = bytearray()
                else:
                    self._need = int(headers.get("content-length", "0"))
            if self._need >= 0:
                if len(self._buf) < self._need:
                    return
                body = bytes(self._buf[: self._need])
                del self._buf[: self._need]
                self._finish(body)
                continue
            # chunked
            line_end = self._buf.find(b"\r\n")
            if line_end < 0:
                return
            size = int(self._buf[:line_end].split(b";")[0], 16)
            if len(self._buf) < line_end + 2 + size + 2:
                return
            if size == 0:
                del self._buf[: line_end + 4]
                self._finish(bytes(self._chunks))
                continue
            self._chunks += self._buf[line_end + 2 : line_end + 2 + size]
            del self._buf[: line_end + 2 + size + 2]

    def _finish(self, body: bytes) -> None:
        assert self._head is not None
        status, headers = self._head
        self._head = None
        self._need = -1
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(status, headers, body))

    def send(self, raw: bytes) -> asyncio.Future[Response]:
        """Writes a whole request; the future is its response."""
        if self.transport is None or self.transport.is_closing():
            raise HttpError("connection closed")
        assert self._waiter is None, "one request at a time"
        self._waiter = asyncio.get_running_loop().create_future()
        self.meter.bytes_out += len(raw)
        self.meter.writes += 1
        self.transport.write(raw)
        return self._waiter

    async def request(self, raw: bytes) -> Response:
        return await self.send(raw)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class HttpPool:
    """A few keep-alive connections to one server, for setup work (creating charges)."""

    def __init__(self, host: str, port: int, size: int = 8) -> None:
        self.host, self.port, self.size = host, port, size
        self._free: asyncio.Queue[HttpConnection] = asyncio.Queue()
        self._made = 0

    async def request(self, raw: bytes) -> Response:
        if self._free.empty() and self._made < self.size:
            self._made += 1
            conn = await HttpConnection.open(self.host, self.port)
        else:
            conn = await self._free.get()
        try:
            answer = await conn.request(raw)
        except BaseException:
            conn.close()
            self._made -= 1
            raise
        if answer.headers.get("connection", "").lower() == "close":
            conn.close()
            self._made -= 1
        else:
            self._free.put_nowait(conn)
        return answer

    def close(self) -> None:
        while not self._free.empty():
            self._free.get_nowait().close()


# Charges ----------------------------------------------------------------


async def create_charges(
    pool: HttpPool, api_key: str, count: int, value: str = "12.34", concurrency: int = 8
) -> list[str]:
    """Creates `count` charges through the API (pixlive and baseline share the route)."""
    host = f"{pool.host}:{pool.port}"
    body = orjson.dumps({"value": value, "expires_in": 7200})
    raw = build_request(
        "POST",
        host,
        "/payments/pix",
        {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
        body,
    )
    ids: list[str] = []
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            answer = await pool.request(raw)
            if answer.status != 201:
                raise HttpError(f"create charge: {answer.status} {answer.body[:200]!r}")
            ids.append(answer.json()["id"])

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count) or 1)))
    return ids


# Subscribers ----------------------------------------------------------------

OnEvent = Callable[[dict[str, Any]], None]


class Subscriber:
    """One live subscriber of one charge: first the snapshot, then events.

    `ready` resolves at the snapshot; `on_event(event)` is called for each event with the
    event's dict. `done` resolves when the stream ends (final event or close)."""

    transport_name = "?"

    def __init__(
        self, base: tuple[str, int], payment_id: str, meter: Meter, source: str | None = None
    ) -> None:
        self.host, self.port = base
        self.payment_id = payment_id
        # the client address to connect from (127.x.y.z): many payers, not one address
        self.local_addr = (source, 0) if source else None
        self.meter = meter
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[int] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.on_event: OnEvent | None = None
        self.events = 0
        self.task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._guarded())

    async def _guarded(self) -> None:
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

    def _snapshot(self, last_event_id: int) -> None:
        if not self.ready.done():
            self.ready.set_result(last_event_id)

    def _event(self, event: dict[str, Any]) -> None:
        self.events += 1
        if self.on_event is not None:
            self.on_event(event)

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except BaseException:
                pass


class WsSubscriber(Subscriber):
    """pixlive's WebSocket: `GET /payments/pix/{id}/ws`, JSON text frames."""

    transport_name = "ws"

    async def run(self) -> None:
        url = f"ws://{self.host}:{self.port}/payments/pix/{self.payment_id}/ws"
        async with connect(
            url,
            compression=None,
            open_timeout=60,
            ping_interval=None,  # the server pings; the client only answers
            close_timeout=2,
            max_queue=16,
            create_connection=counting_ws_class(self.meter),
            local_addr=self.local_addr,
        ) as conn:
            async for message in conn:
                event = orjson.loads(message)
                if event.get("type") == "snapshot":
                    self._snapshot(event["last_event_id"])
                else:
                    self._event(event)


class SocketIoSubscriber(Subscriber):
    """The baseline's socket.io (protocol 5, Engine.IO 4) over WebSocket, on the same
    websockets client as pixlive's: connect to the namespace with the charge id in `auth`,
    the server joins the socket to the charge's room and emits `snapshot`, then `payment`
    events. Engine.IO pings ("2") are answered ("3") as socket.io clients do."""

    transport_name = "socketio"

    async def run(self) -> None:
        url = f"ws://{self.host}:{self.port}/socket.io/?EIO=4&transport=websocket"
        async with connect(
            url,
            compression=None,
            open_timeout=60,
            ping_interval=None,
            close_timeout=2,
            max_queue=16,
            create_connection=counting_ws_class(self.meter),
            local_addr=self.local_addr,
        ) as conn:
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
                        self._snapshot(data["last_event_id"])
                    else:
                        self._event(data)
                        if data.get("type") in FINAL_TYPES:
                            return
                elif message.startswith("44"):
                    raise HttpError(f"socket.io connect refused: {message}")
                elif message == "1":
                    return


FINAL_TYPES = {"payment.paid", "payment.expired", "payment.cancelled"}


class _StreamProtocol(asyncio.Protocol):
    """Reads an HTTP response head, then hands the (possibly chunked) body on as it comes."""

    def __init__(self, meter: Meter, on_body: Callable[[bytes], None]) -> None:
        self.meter = meter
        self.on_body = on_body
        self.head: asyncio.Future[tuple[int, dict[str, str]]] = (
            asyncio.get_event_loop().create_future()
        )
        self.closed: asyncio.Future[None] = asyncio.get_event_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._chunked = False
        self._in_head = True
        self._chunk_left = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(HttpError("closed before the response"))
        if not self.closed.done():
            self.closed.set_result(None)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.meter.bytes_out += len(data)
        self.meter.writes += 1
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.meter.bytes_in += len(data)
        self.meter.reads += 1
        self._buf += data
        if self._in_head:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status, headers = _parse_head(bytes(self._buf[:end]))
            del self._buf[: end + 4]
            self._in_head = False
            self._chunked = headers.get("transfer-encoding", "").lower() == "chunked"
            self.head.set_result((status, headers))
        if not self._chunked:
            if self._buf:
                self.on_body(bytes(self._buf))
                self._buf.clear()
            return
        while True:
            if self._chunk_left < 0:
                line_end = self._buf.find(b"\r\n")
                if line_end < 0:
                    return
                size = int(self._buf[:line_end].split(b";")[0], 16)
                del self._buf[: line_end + 2]
                if size == 0:
                    self.on_body(b"")  # end of the stream
                    return
                self._chunk_left = size
            if len(self._buf) < self._chunk_left + 2:
                return
            self.on_body(bytes(self._buf[: self._chunk_left]))
            del self._buf[: self._chunk_left + 2]
            self._chunk_left = -1


class SseSubscriber(Subscriber):
    """pixlive's Server-Sent Events: `GET /payments/pix/{id}/events`."""

    transport_name = "sse"

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        pending = bytearray()
        ended = loop.create_future()

        def on_body(data: bytes) -> None:
            if not data:
                if not ended.done():
                    ended.set_result(None)
                return
            pending.extend(data)
            while True:
                end = pending.find(b"\n\n")
                if end < 0:
                    return
                block = bytes(pending[:end]).decode()
                del pending[: end + 2]
                kind, payload = "message", []
                for line in block.split("\n"):
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        payload.append(line[5:].lstrip())
                if not payload:
                    continue  # a comment (keepalive) or a retry: line
                data_obj = orjson.loads("\n".join(payload))
                if kind == "snapshot":
                    self._snapshot(data_obj["last_event_id"])
                else:
                    self._event(data_obj)

        _, proto = await loop.create_connection(
            lambda: _StreamProtocol(self.meter, on_body),
            self.host,
            self.port,
            local_addr=self.local_addr,
        )
        try:
            proto.write(
                build_request(
                    "GET",
                    f"{self.host}:{self.port}",
                    f"/payments/pix/{self.payment_id}/events",
                    {"Accept": "text/event-stream"},
                )
            )
            status, _ = await proto.head
            if status != 200:
                raise HttpError(f"SSE answered {status}")
            await asyncio.wait([ended, proto.closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if proto.transport is not None:
                proto.transport.close()


class LongPollSubscriber(Subscriber):
    """pixlive's long poll: `GET /payments/pix/{id}/poll?after=N&timeout=S`, again and again
    on one keep-alive connection, resuming from the last event id it got. The first poll
    has timeout=0: it answers the snapshot at once, as a page that just loaded would ask."""

    transport_name = "longpoll"
    poll_timeout = 25.0
    first_timeout: float | None = None  # to spread idle pollers' cycles over the period
    inflight = 0  # bytes of the poll request waiting for its answer

    async def run(self) -> None:
        conn = await HttpConnection.open(self.host, self.port, self.meter, self.local_addr)
        host = f"{self.host}:{self.port}"
        after: int | None = None
        try:
            while True:
                if after is None:
                    query = "timeout=0"
                else:
                    wait = self.poll_timeout
                    if self.first_timeout is not None:
                        wait, self.first_timeout = self.first_timeout, None
                    query = f"after={after}&timeout={wait:g}"
                raw = build_request("GET", host, f"/payments/pix/{self.payment_id}/poll?{query}")
                self.inflight = len(raw)
                answer = await conn.request(raw)
                self.inflight = 0
                if answer.status != 200:
                    raise HttpError(f"poll answered {answer.status}")
                doc = answer.json()
                snapshot = doc["snapshot"]
                final = False
                for event in doc["events"]:
                    after = max(after or 0, event["id"])
                    self._event(event)
                    final = final or event["type"] in FINAL_TYPES
                if after is None:
                    after = snapshot["last_event_id"]
                    self._snapshot(after)
                if final or snapshot["payment"]["status"] != "ACTIVE":
                    return
        finally:
            conn.close()


class PollingSubscriber(Subscriber):
    """The baseline of the baselines: `GET /payments/pix/{id}` (JSON) every `interval`
    seconds until the status changes; the change is the notification."""

    transport_name = "polling"
    interval = 2.0

    def __init__(
        self,
        base: tuple[str, int],
        payment_id: str,
        meter: Meter,
        source: str | None = None,
        phase: float = 0.0,
    ) -> None:
        super().__init__(base, payment_id, meter, source)
        self.phase = phase

    async def run(self) -> None:
        conn = await HttpConnection.open(self.host, self.port, self.meter, self.local_addr)
        raw = build_request(
            "GET",
            f"{self.host}:{self.port}",
            f"/payments/pix/{self.payment_id}",
            {"Accept": "application/json"},
        )
        try:
            first = True
            while True:
                answer = await conn.request(raw)
                if answer.status != 200:
                    raise HttpError(f"GET charge answered {answer.status}")
                doc = answer.json()
                if doc["status"] != "ACTIVE":
                    self._event(
                        {
                            "type": "payment.paid",
                            "payment_id": self.payment_id,
                            "status": doc["status"],
                        }
                    )
                    return
                if first:
                    first = False
                    self._snapshot(doc.get("last_event_id", 0))
                    await asyncio.sleep(self.phase)
                else:
                    await asyncio.sleep(self.interval)
        finally:
            conn.close()


SOURCES = 64  # client addresses 127.1.0.1 ... 127.1.0.64


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
