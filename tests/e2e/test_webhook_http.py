"""The webhook as the connection answers it (server/webhook.py, its only way in), byte by
byte on raw sockets: keep-alive, pipelining, chunked bodies, `Expect: 100-continue`,
HTTP/1.0, body limits, clients that leave."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import orjson
import pytest

from pixlive.services.psp import signed_headers, webhook_body
from tests.e2e.conftest import Server, start_server

PATH = "/payments/pix/confirmation"


@pytest.fixture(scope="module")
def any_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("webhook-http")
    running = start_server(workdir, PIXLIVE_LOG_LEVEL="info")
    try:
        yield running
    finally:
        running.stop()


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> dict[str, object]:
        parsed = orjson.loads(self.body)
        assert isinstance(parsed, dict)
        return parsed


class Raw:
    """One TCP connection, written and read as bytes."""

    def __init__(self, server: Server) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def read(self) -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"connection closed before a response: {self.buffer!r}"
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            assert self._fill(), "connection closed inside a body"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(status, headers, body)

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def request(
    server: Server,
    body: bytes,
    *,
    extra: dict[str, str] | None = None,
    version: str = "1.1",
    path: str = PATH,
    chunked: bool = False,
) -> bytes:
    headers = {"Host": "test", **signed_headers(server.secret, body), **(extra or {})}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
        half = len(body) // 2
        payload = (
            b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:]))
            + b"0\r\n\r\n"
        )
    else:
        headers.setdefault("Content-Length", str(len(body)))
        payload = body
    head = f"POST {path} HTTP/{version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + payload


def assert_paid(answer: Answer, payment_id: str) -> None:
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert "content-security-policy" in answer.headers
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "date" in answer.headers
    results = answer.json()["results"]
    assert isinstance(results, list) and len(results) == 1
    assert results[0]["outcome"] == "paid" and results[0]["payment_id"] == payment_id


def test_keep_alive_answers_every_delivery_on_one_connection(any_server: Server) -> None:
    with Raw(any_server) as conn:
        for _ in range(3):
            charge = any_server.create_charge("12.34")
            conn.send(request(any_server, webhook_body(charge["id"], "12.34")))
            answer = conn.read()
            assert_paid(answer, charge["id"])
            assert "connection" not in answer.headers
            assert any_server.charge(charge["id"])["status"] == "PAID"


def test_pipelined_requests_are_answered_in_order(any_server: Server) -> None:
    first, second = any_server.create_charge("12.34"), any_server.create_charge("5.00")
    with Raw(any_server) as conn:
        conn.send(
            request(any_server, webhook_body(first["id"], "12.34"))
            + b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
            + request(any_server, webhook_body(second["id"], "5.00"))
        )
        assert_paid(conn.read(), first["id"])
        health = conn.read()
        assert health.status == 200 and health.json()["status"] == "ok"
        assert_paid(conn.read(), second["id"])


def test_chunked_body(any_server: Server) -> None:
    charge = any_server.create_charge("12.34")
    with Raw(any_server) as conn:
        conn.send(request(any_server, webhook_body(charge["id"], "12.34"), chunked=True))
        assert_paid(conn.read(), charge["id"])


def test_expect_100_continue(any_server: Server) -> None:
    charge = any_server.create_charge("12.34")
    body = webhook_body(charge["id"], "12.34")
    raw = request(any_server, body, extra={"Expect": "100-continue"})
    with Raw(any_server) as conn:
        conn.send(raw[: -len(body)])
        interim = conn.read()
        assert interim.status == 100
        conn.send(body)
        assert_paid(conn.read(), charge["id"])


def test_http_1_0_gets_its_answer_then_the_connection_closes(any_server: Server) -> None:
    charge = any_server.create_charge("12.34")
    with Raw(any_server) as conn:
        conn.send(request(any_server, webhook_body(charge["id"], "12.34"), version="1.0"))
        assert_paid(conn.read(), charge["id"])
        assert conn.closed_by_server()


def test_connection_close_is_honoured(any_server: Server) -> None:
    charge = any_server.create_charge("12.34")
    with Raw(any_server) as conn:
        conn.send(
            request(any_server, webhook_body(charge["id"], "12.34"), extra={"Connection": "close"})
        )
        answer = conn.read()
        assert_paid(answer, charge["id"])
        assert answer.headers["connection"] == "close"
        assert conn.closed_by_server()


def _assert_too_large(conn: Raw, server: Server, payment_id: str) -> None:
    answer = conn.read()
    assert answer.status == 413
    assert answer.json()["error"]["code"] == "payload_too_large"  # type: ignore[index]
    assert answer.headers["connection"] == "close"
    assert server.charge(payment_id)["status"] == "ACTIVE"


def test_declared_length_over_the_limit_is_refused_before_the_body(any_server: Server) -> None:
    charge = any_server.create_charge("12.34")
    body = webhook_body(charge["id"], "12.34")
    with Raw(any_server) as conn:
        conn.send(request(any_server, body, extra={"Content-Length": str(2 << 20)})[: -len(body)])
        _assert_too_large(conn, any_server, charge["id"])


def test_chunked_body_over_the_limit_is_refused(any_server: Server) -> None:
    charge = any_server.create_charge("12.34")
    with Raw(any_server) as conn:
        conn.send(
            request(any_server, b"{}", chunked=True)[: -len(b"1\r\n{\r\n1\r\n}\r\n0\r\n\r\n")]
        )
        chunk = b" " * 65536
        try:
            for _ in range(20):  # 1.25 MiB, past the 1 MiB limit
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the end: the answer is read below
        _assert_too_large(conn, any_server, charge["id"])


def test_refusals_keep_the_connection(any_server: Server) -> None:
    charge = any_server.create_charge("12.34")
    body = webhook_body(charge["id"], "12.34")
    with Raw(any_server) as conn:
        forged = request(any_server, body).replace(b"v1=", b"v1=00")
        conn.send(forged)
        answer = conn.read()
        assert answer.status == 401
        assert answer.json()["error"]["code"] == "invalid_signature"  # type: ignore[index]
        conn.send(request(any_server, b"{not json"))
        assert conn.read().status == 400
        conn.send(request(any_server, body))
        assert_paid(conn.read(), charge["id"])


def test_a_client_that_leaves_does_not_lose_its_pix(any_server: Server) -> None:
    """The Pix was on its way to the books when the PSP hung up: it is committed anyway,
    and the PSP's retry is answered as a duplicate."""
    charge = any_server.create_charge("12.34")
    body = webhook_body(charge["id"], "12.34")
    conn = Raw(any_server)
    conn.send(request(any_server, body))
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()  # a reset, at once
    deadline = time.monotonic() + 10
    while any_server.charge(charge["id"])["status"] != "PAID":
        assert time.monotonic() < deadline, "the Pix of a client that left was lost"
        time.sleep(0.05)
    retry = any_server.webhook(body)
    assert retry.json()["results"][0]["outcome"] == "duplicate"


def test_an_escaped_path_is_still_the_webhook(any_server: Server) -> None:
    charge = any_server.create_charge("12.34")
    with Raw(any_server) as conn:
        escaped = "/payments/pix/confirmatio%6E"
        conn.send(request(any_server, webhook_body(charge["id"], "12.34"), path=escaped))
        assert_paid(conn.read(), charge["id"])


def test_the_access_log_has_the_delivery(any_server: Server) -> None:
    charge = any_server.create_charge("12.34")
    assert any_server.pay(charge["id"], "12.34").status_code == 200
    assert any_server.log is not None
    deadline = time.monotonic() + 5
    while f'"POST {PATH} HTTP/1.1" 200' not in any_server.log.read_text():
        assert time.monotonic() < deadline, any_server.log.read_text()[-2000:]
        time.sleep(0.05)


def test_other_routes_are_untouched(any_server: Server) -> None:
    charge = any_server.create_charge("12.34")
    read = any_server.http.get(f"/payments/pix/{charge['id']}")
    assert read.status_code == 200 and read.json()["id"] == charge["id"]
    # a GET of the webhook's path is a read of a charge called "confirmation"
    not_a_delivery = any_server.http.get(PATH)
    assert not_a_delivery.status_code == 404
    assert not_a_delivery.json()["error"]["code"] == "not_found"
