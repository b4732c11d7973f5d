"""A fuzz run of the connection-level code (hypothesis): request heads and WebSocket
frames, seeded with the attacks of issue 11, cut at any byte. Small in `make test`;
`make soak` runs it longer (FUZZ_EXAMPLES)."""

from __future__ import annotations

import asyncio
import os
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.protocol import State

from pixlive.server.limits import Limits
from tests.unit.wire_fakes import ManualClock, charge_socket, connect, statuses

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SEEDS = [
    b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"POST /payments/pix/confirmation?hmac=x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2\r\n{}\r\n0\r\nAuthorization: b\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: " + b"v" * 9000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: v\r\n" * 120 + b"\r\n",
    b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET /payments/pix/x/ws HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello on the plain port
]


class App:
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    out, last = [], 0
    for point in [*points, len(data)]:
        out.append(data[last:point])
        last = point
    return [piece for piece in out if piece]


heads = st.one_of(
    st.sampled_from(SEEDS),
    st.builds(lambda a, b: a + b, st.sampled_from(SEEDS), st.sampled_from(SEEDS)),
    st.builds(
        lambda seed, at, junk: seed[:at] + junk + seed[at:],
        st.sampled_from(SEEDS),
        st.integers(0, 64),
        st.binary(max_size=64),
    ),
    st.binary(max_size=512),
)


@FUZZ
@given(data=heads, cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_any_bytes_get_answers_in_shape_and_a_bounded_connection(
    data: bytes, cuts: list[int]
) -> None:
    async def run() -> None:
        clock = ManualClock()
        limits = Limits(body=4096)
        protocol, transport = connect(App(), clock=clock, limits=limits)
        for piece in _pieces(data, cuts):
            protocol.data_received(piece)
            for _ in range(5):
                await asyncio.sleep(0)
            if transport.closed:
                break
        for _ in range(20):
            await asyncio.sleep(0)
        # the connection holds no more than the limits allow
        assert len(protocol._url) <= limits.request_line
        for request in (protocol.current, *protocol.pipeline):
            if request is not None:
                assert len(request.body) <= 2 * 65536
        out = bytes(transport.written)
        assert all(100 <= status < 600 for status in statuses(out))
        if any(status in (400, 408, 413, 414, 431) for status in statuses(out)):
            assert transport.closed
        clock.advance(60)  # every timer ends: no connection outlives its limits
        assert transport.closed
        protocol.connection_lost(None)

    asyncio.run(run())


def _frame(opcode: int, payload: bytes, fin: bool, mask: bytes) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


frames = st.lists(
    st.one_of(
        st.builds(
            _frame,
            st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA, 0x3, 0xB]),
            st.one_of(
                st.binary(max_size=200), st.sampled_from([b"\xff\xfe", b"\xe2\x82", b"\x03\xe8"])
            ),
            st.booleans(),
            st.binary(min_size=4, max_size=4),
        ),
        st.sampled_from([b"\x81\x7f" + b"\x00" * 8, b"\x89\x05hello", b"\xf1\x80abcd"]),
    ),
    max_size=6,
)


@FUZZ
@given(sent=frames, cuts=st.lists(st.integers(0, 2000), max_size=6))
def test_any_frames_leave_the_socket_open_or_closed_with_a_code(
    sent: list[bytes], cuts: list[int]
) -> None:
    socket, transport = charge_socket()
    for piece in _pieces(b"".join(sent), cuts):
        socket.data_received(piece)
        if transport.closed:
            break
    out = bytes(transport.written)
    if socket.protocol.state is not State.OPEN:
        # a close frame went out (or the transport is closed): never left hanging
        assert b"\x88" in out or transport.closed
    socket.connection_lost(None)
