"""The HTTP connection (server/http.py) fed bytes: the edge's limits, its timers on an
injected clock, pipelining, trailers, and the access log's redaction."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest

from pixlive.server.limits import Limits
from tests.unit.wire_fakes import ManualClock, State, connect, statuses


class App:
    """An ASGI app that answers 200 with the body it read; `close` answers with
    `Connection: close`."""

    def __init__(self, *, close: bool = False) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.close = close

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(b"content-type", b"text/plain")]
        if self.close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"got:" + body})


async def settle() -> None:
    """Lets the app's tasks run (no time passes)."""
    for _ in range(20):
        await asyncio.sleep(0)


def error_code(data: bytes) -> str:
    body = data.split(b"\r\n\r\n", 1)[1]
    code: str = orjson.loads(body)["error"]["code"]
    return code


async def test_a_request_is_answered_and_the_connection_kept() -> None:
    app = App()
    protocol, transport = connect(app)
    protocol.data_received(b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    await settle()
    out = transport.take()
    assert statuses(out) == [200] and out.endswith(b"4\r\ngot:\r\n0\r\n\r\n")
    assert not transport.closed
    assert app.scopes[0]["path"] == "/a" and app.scopes[0]["query_string"] == b"x=1"


async def test_a_request_line_over_the_limit_is_414_and_closed() -> None:
    app = App()
    protocol, transport = connect(app)
    protocol.data_received(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
    await settle()
    out = transport.take()
    assert statuses(out) == [414] and error_code(out) == "uri_too_long"
    assert transport.closed and not app.scopes


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Big: " + b"v" * 8200 + b"\r\n",  # one header over 8 KiB
        b"".join(b"X-%d: v\r\n" % n for n in range(101)),  # over 100 headers
        b"".join(b"X-%d: %s\r\n" % (n, b"v" * 4000) for n in range(9)),  # over 32 KiB in all
    ],
)
async def test_headers_over_the_limits_are_431_and_closed(headers: bytes) -> None:
    app = App()
    protocol, transport = connect(app)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: h\r\n" + headers + b"\r\n")
    await settle()
    out = transport.take()
    assert statuses(out) == [431] and error_code(out) == "headers_too_large"
    assert transport.closed and not app.scopes


async def test_an_endless_header_is_refused_before_it_grows() -> None:
    """64 MB of one header, sent in 64 KiB pieces: refused within the first few, so the
    parser never holds more than a bounded piece of it."""
    app = App()
    protocol, transport = connect(app)
    protocol.data_received(b"GET / HTTP/1.1\r\nX-Huge: ")
    sent = 0
    piece = b"v" * 65536
    while not transport.closed and sent < 64 << 20:
        protocol.data_received(piece)
        sent += len(piece)
    assert transport.closed and sent <= 4 * 65536, sent
    assert statuses(transport.take()) == [431]


async def test_a_silent_connection_is_closed_when_the_head_timeout_passes() -> None:
    clock = ManualClock()
    _, transport = connect(App(), clock=clock, limits=Limits(head_timeout=10))
    clock.advance(9.9)
    assert not transport.closed
    clock.advance(0.2)
    assert transport.closed and transport.take() == b""  # nothing asked, nothing owed


async def test_a_trickled_head_is_408_at_the_head_timeout() -> None:
    clock = ManualClock()
    protocol, transport = connect(App(), clock=clock, limits=Limits(head_timeout=10))
    for byte in b"GET / HTTP/1.1\r\nX-A:":  # a byte a second does not extend it
        protocol.data_received(bytes([byte]))
        clock.advance(0.5)
    clock.advance(0.6)
    out = transport.take()
    assert statuses(out) == [408] and error_code(out) == "request_timeout"
    assert transport.closed


async def test_a_half_sent_body_is_408_at_the_body_timeout() -> None:
    clock = ManualClock()
    app = App()
    protocol, transport = connect(app, clock=clock, limits=Limits(body_timeout=10))
    protocol.data_received(b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    await settle()
    clock.advance(9)
    protocol.data_received(b"d")  # each read restarts the wait
    clock.advance(9)
    assert not transport.closed
    clock.advance(1.5)
    await settle()
    assert statuses(transport.take()) == [408] and transport.closed


async def test_an_idle_keepalive_connection_is_closed() -> None:
    clock = ManualClock()
    limits = Limits(keepalive_timeout=5, head_timeout=10)
    protocol, transport = connect(App(), clock=clock, limits=limits)
    protocol.data_received(b"GET / HTTP/1.1\r\n\r\n")
    await settle()
    assert statuses(transport.take()) == [200]
    clock.advance(4.9)
    assert not transport.closed
    clock.advance(0.2)
    assert transport.closed


async def test_connections_past_the_cap_are_refused_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = State()
    limits = Limits(connections=2)
    kept = [connect(App(), state=state, limits=limits) for _ in range(2)]
    with caplog.at_level(logging.WARNING, "pixlive.server"):
        _, refused = connect(App(), state=state, limits=limits)
    assert statuses(refused.take()) == [503] and refused.closed
    assert all(not transport.closed for _, transport in kept)
    assert "PIXLIVE_MAX_CONNECTIONS" in caplog.text
    kept[0][0].connection_lost(None)  # one leaves: room for one more
    _, admitted = connect(App(), state=state, limits=limits)
    assert not admitted.closed


async def test_a_trailer_never_reaches_the_app() -> None:
    """Headers sent after a chunked body (a trailer) are not the request's headers: an
    Authorization there authenticates nothing."""
    app = App()
    protocol, transport = connect(app)
    protocol.data_received(
        b"POST /payments/pix HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\nAuthorization: Bearer pxl_secret\r\nPixlive-Signature: t=1,v1=0\r\n\r\n"
    )
    await settle()
    assert statuses(transport.take()) == [200]
    names = {name for name, _ in app.scopes[0]["headers"]}
    assert b"authorization" not in names and b"pixlive-signature" not in names


async def test_pipelined_requests_are_answered_in_order() -> None:
    app = App()
    protocol, transport = connect(app)
    protocol.data_received(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n")
    await settle()
    assert statuses(transport.take()) == [200, 200, 200]
    assert [scope["path"] for scope in app.scopes] == ["/1", "/2", "/3"]


async def test_nothing_pipelined_after_an_answer_that_closes_runs() -> None:
    app = App(close=True)
    protocol, transport = connect(app)
    protocol.data_received(
        b"POST /1 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"
        b"POST /2 HTTP/1.1\r\nContent-Length: 1\r\n\r\ny"
    )
    await settle()
    assert statuses(transport.take()) == [200]
    assert transport.closed and [scope["path"] for scope in app.scopes] == ["/1"]


async def test_the_access_log_masks_credentials(caplog: pytest.LogCaptureFixture) -> None:
    protocol, _ = connect(App())
    with caplog.at_level(logging.INFO, "uvicorn.access"):
        protocol.data_received(
            b"POST /payments/pix/confirmation?hmac=s3cr3t-token&a=1 HTTP/1.1\r\n\r\n"
        )
        await settle()
    assert "s3cr3t-token" not in caplog.text
    assert "hmac=[redacted]&a=1" in caplog.text


async def test_a_client_that_sends_bodies_faster_than_the_app_reads_is_paused() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await release.wait()
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    protocol, transport = connect(slow)
    protocol.data_received(b"POST / HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n")
    await started.wait()
    while transport.reading:
        protocol.data_received(b"x" * 65536)
    assert len(protocol.current.body) <= 2 * 65536  # type: ignore[union-attr]
    release.set()
    await settle()
    assert transport.reading


async def test_connections_stop_short_of_the_open_files_limit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Out of descriptors, uvloop's accept drops connections silently: the cap stays below
    the open-files limit, and passing it is logged, naming that limit."""
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _: (100, 100))
    state = State()
    kept = [connect(App(), state=state) for _ in range(100 - 64)]  # 64 kept for the rest
    assert all(not transport.closed for _, transport in kept)
    with caplog.at_level(logging.WARNING, "pixlive.server"):
        _, refused = connect(App(), state=state)
    assert statuses(refused.take()) == [503] and refused.closed
    assert "open-files limit (100" in caplog.text
