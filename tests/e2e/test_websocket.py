"""The charge stream's WebSocket (server/websocket.py) at the byte level, with a raw socket
where a client library would hide what is tested: keepalive, a dead peer, protocol errors,
the close handshake, the upgrades it refuses."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import Server, start_server
from tests.e2e.streams import websocket, ws_messages

KEY = base64.b64encode(os.urandom(16)).decode()


def handshake(server: Server, path: str, **headers: str) -> tuple[socket.socket, int, bytes]:
    """Sends an upgrade request; returns the socket, the status and the response head."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    fields = {
        "Host": f"{host}:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
        **{name.replace("_", "-"): value for name, value in headers.items()},
    }
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    sock.sendall(request.encode() + b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1])
    return sock, status, head


class Reader:
    """Reads the server's frames from a raw socket (what is left after the head first)."""

    def __init__(self, sock: socket.socket, rest: bytes) -> None:
        self.sock = sock
        self.buffer = rest

    def _need(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def frame(self) -> tuple[int, bytes]:
        first, second = self._need(2)
        assert not second & 0x80, "a server's frames are never masked"
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", self._need(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", self._need(8))
        return first & 0x0F, self._need(size)


def masked(opcode: int, payload: bytes = b"") -> bytes:
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + key + body


def open_stream(server: Server, payment_id: str) -> Reader:
    sock, status, head = handshake(server, f"/payments/pix/{payment_id}/ws")
    assert status == 101, head
    reader = Reader(sock, head.split(b"\r\n\r\n", 1)[1])
    opcode, payload = reader.frame()
    assert opcode == 0x1 and json.loads(payload)["type"] == "snapshot"
    return reader


@pytest.fixture(scope="module")
def pinging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("pinging"), PIXLIVE_WS_PING_SECONDS="0.4")
    try:
        yield server
    finally:
        server.stop()


def test_the_handshake_answers_the_rfc_accept_key(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    sock, status, head = handshake(shared_server, f"/payments/pix/{charge['id']}/ws")
    with sock:
        assert status == 101
        assert b"server: uvicorn" not in head.lower(), "served by our protocol, not uvicorn's"
        lines = head.split(b"\r\n\r\n", 1)[0].decode().lower()
        guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        digest = hashlib.sha1((KEY + guid).encode(), usedforsecurity=False).digest()
        assert f"sec-websocket-accept: {base64.b64encode(digest).decode().lower()}" in lines


def test_a_client_that_answers_pings_stays_and_a_silent_one_is_dropped(pinging: Server) -> None:
    charge = pinging.create_charge()
    reader = open_stream(pinging, charge["id"])
    with reader.sock:
        for _ in range(3):  # three intervals, each ping answered: the stream stays open
            opcode, payload = reader.frame()
            assert opcode == 0x9
            reader.sock.sendall(masked(0xA, payload))
        # Silent from now on: the next visit finds the last ping unanswered and drops us.
        reader.sock.settimeout(5)
        with pytest.raises(EOFError):
            while True:
                opcode, _ = reader.frame()
                assert opcode == 0x9


def test_an_unmasked_frame_is_a_protocol_error_1002(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    reader = open_stream(shared_server, charge["id"])
    with reader.sock:
        reader.sock.sendall(struct.pack("!BB", 0x81, 2) + b"hi")
        opcode, payload = reader.frame()
        assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1002


def test_a_client_message_over_the_cap_is_closed_1009(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    reader = open_stream(shared_server, charge["id"])
    with reader.sock:
        reader.sock.sendall(struct.pack("!BBQ", 0x82, 0x80 | 127, 1 << 30) + os.urandom(4))
        opcode, payload = reader.frame()
        assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1009


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/payments/pix/{id}/ws?after=-1", {}, 422),
        ("/payments/pix/{id}/ws?after=abc", {}, 422),
        ("/payments/pix/{id}/ws", {"Sec-WebSocket-Version": "8"}, 426),
        ("/payments/pix/{id}/ws", {"Sec-WebSocket-Key": "short"}, 400),
        ("/payments/pix/../ws", {}, 404),
        ("/payments/pix/{id}%00/ws", {}, 404),
    ],
)
def test_bad_upgrades_get_the_error_json_before_the_upgrade(
    shared_server: Server, path: str, headers: dict[str, str], status: int
) -> None:
    charge = shared_server.create_charge()
    sock, answer, head = handshake(shared_server, path.format(id=charge["id"]), **headers)
    with sock:
        assert answer == status, head
        body = head.split(b"\r\n\r\n", 1)[1]
        while len(body) < int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]):
            body += sock.recv(4096)
        error = json.loads(body)["error"]
        assert set(error) == {"code", "message"}
        if status == 426:
            assert b"sec-websocket-version: 13" in head.lower()


def test_other_websocket_paths_go_to_the_application(shared_server: Server) -> None:
    """Not a charge stream: refused with 403 before the upgrade (the app has no WebSocket
    routes; Starlette too refuses one it cannot route with 403)."""
    sock, status, head = handshake(shared_server, "/nowhere/ws")
    with sock:
        assert status == 403, head


async def test_client_ping_gets_its_pong_and_its_close_code_echoed(shared_server: Server) -> None:
    charge = shared_server.create_charge()
    async with websocket(shared_server.url, charge["id"]) as conn:
        await ws_messages(conn, 1)
        pong = await conn.ping(b"payload")
        await asyncio.wait_for(pong, 5)
        await conn.close(4000, "leaving")
        assert conn.protocol.close_rcvd is not None and conn.protocol.close_rcvd.code == 4000


async def test_the_stream_still_goes_live_after_client_traffic(shared_server: Server) -> None:
    """Text a client sends is ignored; the stream goes on to the payment."""
    charge = shared_server.create_charge()
    async with websocket(shared_server.url, charge["id"]) as conn:
        await ws_messages(conn, 1)
        await conn.send("hello")
        await conn.send(b"\x00" * 100)
        assert (await asyncio.to_thread(shared_server.pay, charge["id"])).status_code == 200
        (paid,) = await ws_messages(conn, 1)
        assert paid["type"] == "payment.paid"
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(conn.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


def collected(server: Server) -> float:
    """Objects the server's garbage collector has freed so far: only what reference counting
    could not (cycles)."""
    text = server.http.get("/metrics").text
    prefix = "python_gc_objects_collected_total{"
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def test_streams_that_come_and_go_leave_nothing_for_the_collector(server: Server) -> None:
    """Each upgrade used to leave uvicorn's HTTP protocol object in a cycle with its parser,
    holding the transport and socket until a collection: collections that ran while
    payments were being notified, and took longer the more subscribers were connected."""
    charge = server.create_charge()
    path = f"/payments/pix/{charge['id']}/ws"
    for _ in range(20):  # what a first connection sets up once (imports, caches)
        open_stream(server, charge["id"]).sock.close()
    before = collected(server)
    for n in range(300):
        reader = open_stream(server, charge["id"])
        if n % 2:  # half leave with a close handshake, half just hang up
            reader.sock.sendall(masked(0x8, struct.pack("!H", 1000)))
            assert reader.frame()[0] == 0x8
        reader.sock.close()
    # 300 connections with a cycle each would be thousands of objects; a few may come
    # from elsewhere in the server (the metrics request itself)
    assert collected(server) - before < 300, path
