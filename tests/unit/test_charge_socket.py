"""The charge stream's WebSocket (server/websocket.py) fed frames: pongs stop being read
while the client does not read them, and text that is not UTF-8 closes 1007."""

from __future__ import annotations

import os
import struct

from websockets.protocol import State

from tests.unit.wire_fakes import charge_socket


def masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    return (
        bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )


def close_code(data: bytes) -> int:
    index = data.index(b"\x88")
    code: int = struct.unpack("!H", data[index + 2 : index + 4])[0]
    return code


def test_pings_get_pongs_until_the_writes_back_up_then_reading_stops() -> None:
    socket, transport = charge_socket()
    socket.data_received(masked(0x9, b"a"))
    assert transport.take() == b"\x8a\x01a"  # the pong
    socket.pause_writing()  # the client does not read: the buffer passed its high-water mark
    socket.data_received(masked(0x9, b"b") * 100)
    assert not transport.reading
    socket.resume_writing()
    assert transport.reading


def test_text_that_is_not_utf8_closes_1007() -> None:
    socket, transport = charge_socket()
    socket.data_received(masked(0x1, "olá".encode()))
    assert transport.take() == b""
    socket.data_received(masked(0x1, b"\xe2\x82", fin=False))  # split inside a character
    socket.data_received(masked(0x0, b"\xac"))
    assert transport.take() == b""
    socket.data_received(masked(0x1, b"ok \xff"))
    assert close_code(transport.take()) == 1007
    assert socket.protocol.state is not State.OPEN


def test_a_client_close_is_echoed_and_the_connection_ends() -> None:
    socket, transport = charge_socket()
    socket.data_received(masked(0x8, struct.pack("!H", 4000)))
    assert close_code(transport.take()) == 4000
    assert transport.closed
