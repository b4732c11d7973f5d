"""Fakes for the connection layer's unit tests: a clock moved by hand, a transport that
records what is written, uvicorn's side of the protocol (config, server state)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from websockets.protocol import State as SocketState
from websockets.server import ServerProtocol

from pixlive.server.http import HttpProtocol
from pixlive.server.limits import Limits
from pixlive.server.websocket import ChargeSocket


class ManualTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, ManualTimer, Callable[[], None]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> ManualTimer:
        timer = ManualTimer()
        heapq.heappush(self._timers, (self.now + delay, next(self._order), timer, callback))
        return timer

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, timer, callback = heapq.heappop(self._timers)
            self.now = when
            if not timer.cancelled:
                callback()
        self.now = end

    def pending(self) -> int:
        return sum(not timer.cancelled for _, _, timer, _ in self._timers)


class FakeTransport:
    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True
        self.protocol: Any = None
        self._extra = {"peername": peer, "sockname": ("127.0.0.1", 8000)}

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def take(self) -> bytes:
        data = bytes(self.written)
        self.written.clear()
        return data


class State:
    def __init__(self) -> None:
        self.connections: set[Any] = set()
        self.tasks: set[Any] = set()
        self.default_headers: list[tuple[bytes, bytes]] = [(b"server", b"test")]


class Config:
    loaded = True
    root_path = ""
    access_log = True
    proxy_headers = False
    forwarded_allow_ips = "127.0.0.1"

    def __init__(self, app: Any) -> None:
        self.loaded_app = app


def connect(
    app: Any,
    *,
    clock: ManualClock | None = None,
    limits: Limits | None = None,
    state: State | None = None,
    app_state: dict[str, Any] | None = None,
) -> tuple[HttpProtocol, FakeTransport]:
    protocol = HttpProtocol(
        Config(app),
        state or State(),
        app_state or {},
        clock=clock or ManualClock(),
        limits=limits or Limits(),
    )
    transport = FakeTransport()
    transport.protocol = protocol
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


def statuses(data: bytes) -> list[int]:
    """The status codes of the responses in `data`, in order."""
    return [int(line.split(b" ")[1]) for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.")]


class Keepalive:
    def discard(self, item: object) -> None:
        pass


def charge_socket() -> tuple[ChargeSocket, FakeTransport]:
    """An open charge WebSocket on a fake transport, past its handshake."""
    transport = FakeTransport()
    conn: Any = SimpleNamespace(
        server_state=SimpleNamespace(connections=set()),
        transport=transport,
        clock=ManualClock(),
        write_paused=False,
    )
    runtime: Any = SimpleNamespace(keepalive=Keepalive())
    protocol = ServerProtocol(max_size=4096, state=SocketState.OPEN)
    socket = ChargeSocket(conn, None, runtime, protocol, None)  # type: ignore[arg-type]
    socket.conn = socket.request = None
    return socket, transport
