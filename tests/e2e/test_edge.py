"""The public edge against a hostile client (issue 11), on a real `pixlive serve`: no
credential in the log, bounded heads, time limits, trailers that authenticate nothing,
nothing run after an answer that closes, WebSocket backpressure, UTF-8 and origins."""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from pixlive.services.psp import signed_headers, webhook_body
from tests.e2e.conftest import Server, start_server

KEY = base64.b64encode(os.urandom(16)).decode()


def rss_kib(server: Server) -> int:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def connect(server: Server, timeout: float = 10) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def statuses(data: bytes) -> list[int]:
    return [int(line.split(b" ")[1]) for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.")]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("edge") / "server",
        PIXLIVE_LOG_LEVEL="info",
        PIXLIVE_HEAD_TIMEOUT_SECONDS="1",
        PIXLIVE_BODY_TIMEOUT_SECONDS="1",
        PIXLIVE_KEEPALIVE_TIMEOUT_SECONDS="1",
    )
    try:
        yield running
    finally:
        running.stop()


def test_no_credential_reaches_the_log(tmp_path: Path) -> None:
    """Production, token mode: `?hmac=<secret>` on every delivery, right or wrong, and API
    keys in Authorization; the server's whole log output never holds either. (The sandbox
    prints its generated secret and key on purpose, for the developer at the terminal.)"""
    server = start_server(
        tmp_path,
        PIXLIVE_ENV="production",
        PIXLIVE_PIX_KEY="loja@example.com",
        PIXLIVE_MERCHANT_NAME="Loja",
        PIXLIVE_MERCHANT_CITY="Recife",
        PIXLIVE_LOG_LEVEL="debug",
        PIXLIVE_WEBHOOK_AUTH="token",
    )
    try:
        charge = server.create_charge()
        body = webhook_body(charge["id"], "12.34")
        paid = server.webhook(body, {}, params={"hmac": server.secret})
        assert paid.status_code == 200, paid.text
        wrong = server.secret[:-4] + "abcd"
        assert server.webhook(body, {}, params={"hmac": wrong}).status_code == 401
        # the token in the /pix path too, and a bearer the server does not know
        answer = server.webhook(body, {}, path="/payments/pix/confirmation/pix",
                                params={"hmac": server.secret})  # fmt: skip
        assert answer.status_code == 200
        fake_key = "pxl_" + "k" * 43
        assert server.http.get("/payments/pix", headers={"Authorization": f"Bearer {fake_key}"}
                               ).status_code == 401  # fmt: skip
    finally:
        server.stop()
    assert server.log is not None
    text = server.log.read_text()
    assert "/payments/pix/confirmation" in text  # the access log was on
    for secret in (server.secret, wrong, server.api_key, fake_key):
        assert secret not in text


def test_heads_over_the_limits_are_refused_and_memory_stays_flat(edge: Server) -> None:
    before = rss_kib(edge)
    for head in (
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-A: " + b"v" * 9000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % n for n in range(101)) + b"\r\n",
    ):
        with connect(edge) as sock:
            sock.sendall(head)
            answer = read_all(sock)
        assert statuses(answer) in ([414], [431]), answer[:200]
    # four connections each sending a 16 MB header, a line at a time for the last one
    for _ in range(4):
        with connect(edge) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nX-Huge: ")
            sent = 0
            try:
                while sent < 16 << 20:
                    sock.sendall(b"v" * 65536)
                    sent += 65536
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert sent < 16 << 20, "the server read a 16 MB header to the end"
    assert edge.http.get("/healthz").status_code == 200
    assert rss_kib(edge) < before * 1.1, (before, rss_kib(edge))


def test_silent_connections_are_closed_on_time_while_healthz_answers(edge: Server) -> None:
    """300 connections that never send a byte: /healthz answers while they are open, and
    each is closed after the head timeout (1 s here), not left open."""
    opened = time.monotonic()
    silent = [connect(edge, timeout=15) for _ in range(300)]
    try:
        assert httpx.get(edge.url + "/healthz", timeout=5).status_code == 200
        for sock in silent:
            assert read_all(sock) == b""  # closed, with nothing owed
        elapsed = time.monotonic() - opened
        assert 1 <= elapsed < 12, elapsed
    finally:
        for sock in silent:
            sock.close()
    # a trickled head and a half-sent body get 408
    with connect(edge) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-A")
        assert statuses(read_all(sock)) == [408]
    with connect(edge) as sock:
        sock.sendall(b"POST /payments/pix/confirmation HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        assert statuses(read_all(sock)) == [408]


def _chunked(path: str, body: bytes, head: dict[str, str], trailer: dict[str, str]) -> bytes:
    fields = {"Host": "test", "Content-Type": "application/json", **head,
              "Transfer-Encoding": "chunked"}  # fmt: skip
    return (
        f"POST {path} HTTP/1.1\r\n".encode()
        + "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode()
        + b"\r\n"
        + b"%x\r\n%s\r\n0\r\n" % (len(body), body)
        + "".join(f"{k}: {v}\r\n" for k, v in trailer.items()).encode()
        + b"\r\n"
    )


def test_credentials_in_a_trailer_authenticate_nothing(edge: Server) -> None:
    charge = edge.create_charge()
    body = webhook_body(charge["id"], "12.34")
    signature = signed_headers(edge.secret, body)["Pixlive-Signature"]
    with connect(edge) as sock:
        sock.sendall(
            _chunked("/payments/pix/confirmation", body, {}, {"Pixlive-Signature": signature})
        )
        answer = sock.recv(65536)
    assert statuses(answer) == [401], answer
    assert edge.charge(charge["id"])["status"] == "ACTIVE"
    created = orjson.dumps({"value": "1.00"})
    with connect(edge) as sock:
        sock.sendall(
            _chunked("/payments/pix", created, {}, {"Authorization": f"Bearer {edge.api_key}"})
        )
        answer = sock.recv(65536)
    assert statuses(answer) == [401], answer


def test_nothing_pipelined_after_a_413_runs(edge: Server) -> None:
    """A chunked body over the limit is answered 413 with Connection: close; a signed
    delivery written right behind it is neither answered nor committed."""
    charge = edge.create_charge()
    body = webhook_body(charge["id"], "12.34")
    big = b"x" * ((1 << 20) + 10)
    over = (
        b"POST /payments/pix/confirmation HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(big), big)
    )
    signed = (
        b"POST /payments/pix/confirmation HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
        % len(body)
        + "".join(f"{k}: {v}\r\n" for k, v in signed_headers(edge.secret, body).items()).encode()
        + b"\r\n"
        + body
    )
    with connect(edge) as sock:
        try:
            sock.sendall(over + signed)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_all(sock)
    assert statuses(answer) == [413], answer[:300]
    # the second delivery would have paid it: a fresh, correct delivery now still can
    assert edge.charge(charge["id"])["status"] == "ACTIVE"
    assert edge.pay(charge["id"]).status_code == 200


def _ws(edge: Server, payment_id: str, origin: str | None = None) -> tuple[socket.socket, bytes]:
    sock = connect(edge)
    fields = {"Host": "test", "Upgrade": "websocket", "Connection": "Upgrade",
              "Sec-WebSocket-Key": KEY, "Sec-WebSocket-Version": "13"}  # fmt: skip
    if origin is not None:
        fields["Origin"] = origin
    sock.sendall(
        f"GET /payments/pix/{payment_id}/ws HTTP/1.1\r\n".encode()
        + "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode()
        + b"\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    return sock, head


def masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_a_client_that_pings_without_reading_is_not_read(edge: Server) -> None:
    """Pings, whose pongs the client never reads: once the server's writes back up it
    stops reading, so the client cannot push 50 MB, and the server's memory stays flat."""
    charge = edge.create_charge()
    before = rss_kib(edge)
    sock, head = _ws(edge, charge["id"])
    assert b" 101 " in head
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(3)
    ping = masked(0x9, b"p" * 125) * 512  # 67 KB of pings per write
    sent = 0
    try:
        while sent < 50 << 20:
            sock.sendall(ping)
            sent += len(ping)
    except TimeoutError:
        pass  # the server stopped reading: what the test is after
    finally:
        sock.close()
    assert sent < 50 << 20, "the server read 50 MB of pings nobody read the pongs of"
    assert rss_kib(edge) < before * 1.1 + 2048, (before, rss_kib(edge))


def test_invalid_utf8_in_a_text_frame_closes_1007(edge: Server) -> None:
    charge = edge.create_charge()
    sock, head = _ws(edge, charge["id"])
    with sock:
        assert b" 101 " in head
        sock.sendall(masked(0x1, b"ok \xff\xfe"))
        data = b""
        code = None
        while code is None:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
            offset = 0
            while offset + 2 <= len(data):  # skip the snapshot's frame(s)
                opcode, size = data[offset] & 0x0F, data[offset + 1] & 0x7F
                start = offset + 2
                if size == 126:
                    if len(data) < start + 2:
                        break
                    size = struct.unpack("!H", data[start : start + 2])[0]
                    start += 2
                if len(data) < start + size:
                    break
                if opcode == 0x8:
                    code = struct.unpack("!H", data[start : start + 2])[0]
                    break
                offset = start + size
        assert code == 1007


def test_streams_refuse_pages_of_other_origins(edge: Server) -> None:
    charge = edge.create_charge()
    sock, head = _ws(edge, charge["id"], origin="https://evil.example")
    sock.close()
    assert head.startswith(b"HTTP/1.1 403"), head
    sock, head = _ws(edge, charge["id"], origin=edge.url)  # the public URL's own origin
    sock.close()
    assert head.startswith(b"HTTP/1.1 101"), head
    answer = edge.http.get(
        f"/payments/pix/{charge['id']}/events", headers={"Origin": "https://evil.example"}
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden_origin"
