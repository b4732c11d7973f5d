"""The WebSocket framing a charge stream speaks (RFC 6455), without a socket."""

from __future__ import annotations

import itertools
import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixlive.realtime import frames
from pixlive.realtime.frames import MAX_MESSAGE, FrameParser, Opcode, ProtocolError


def client_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, masked: bool = True, rsv: int = 0
) -> bytes:
    """A frame as a browser sends it: masked with a random key."""
    first = (0x80 if fin else 0) | rsv | opcode
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head = struct.pack("!BB", first, mask_bit | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def test_accept_key_is_the_rfc_example() -> None:
    assert frames.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("key", ["", "not base64!", "c2hvcnQ=", "A" * 40])
def test_a_key_that_is_not_16_bytes_of_base64_is_refused(key: str) -> None:
    assert frames.accept_key(key) is None


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536])
def test_server_frames_are_unmasked_with_the_right_length_field(size: int) -> None:
    data = frames.frame(Opcode.TEXT, b"x" * size)
    assert data[0] == 0x81 and not data[1] & 0x80
    if size < 126:
        assert data[1] == size and len(data) == 2 + size
    elif size < 65536:
        assert data[1] == 126 and struct.unpack("!H", data[2:4])[0] == size
    else:
        assert data[1] == 127 and struct.unpack("!Q", data[2:10])[0] == size
    assert data.endswith(b"x" * size)


def test_close_frame_carries_code_and_a_cut_reason() -> None:
    data = frames.close(1013, "é" * 100)
    assert data[0] == 0x88 and data[1] <= 125
    assert struct.unpack("!H", data[2:4])[0] == 1013


def test_control_frames_are_unmasked_and_data_frames_skipped() -> None:
    parser = FrameParser()
    got = parser.feed(
        client_frame(Opcode.PING, b"are you there")
        + client_frame(Opcode.TEXT, b"ignored")
        + client_frame(Opcode.CLOSE, struct.pack("!H", 1000) + b"bye")
    )
    assert [(f.opcode, f.payload) for f in got] == [
        (Opcode.PING, b"are you there"),
        (Opcode.TEXT, b""),
        (Opcode.CLOSE, struct.pack("!H", 1000) + b"bye"),
    ]
    assert frames.close_code(got[2].payload) == 1000


@given(
    payloads=st.lists(st.binary(max_size=125), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_frames_cut_anywhere_parse_the_same(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(client_frame(Opcode.PING, p) for p in payloads)
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    parser = FrameParser()
    got = []
    for start, end in itertools.pairwise(points):
        got.extend(parser.feed(stream[start:end]))
    assert [f.payload for f in got] == payloads


def test_a_fragmented_message_is_accepted_up_to_the_cap() -> None:
    parser = FrameParser()
    half = MAX_MESSAGE // 2
    parser.feed(client_frame(Opcode.TEXT, b"a" * half, fin=False))
    parser.feed(client_frame(Opcode.PING, b"between fragments"))
    parser.feed(client_frame(Opcode.CONTINUATION, b"b" * half))
    with pytest.raises(ProtocolError) as too_big:
        parser.feed(client_frame(Opcode.TEXT, b"a" * half, fin=False))
        parser.feed(client_frame(Opcode.CONTINUATION, b"b" * (half + 1)))
    assert too_big.value.code == 1009


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (client_frame(Opcode.TEXT, b"hi", masked=False), 1002),
        (client_frame(Opcode.TEXT, b"hi", rsv=0x40), 1002),
        (client_frame(0x3, b"hi"), 1002),
        (client_frame(Opcode.PING, b"x" * 126), 1002),
        (client_frame(Opcode.PING, b"x", fin=False), 1002),
        (client_frame(Opcode.CONTINUATION, b"x"), 1002),
        (client_frame(Opcode.TEXT, b"x", fin=False) + client_frame(Opcode.TEXT, b"y"), 1002),
        (client_frame(Opcode.BINARY, b"x" * (MAX_MESSAGE + 1)), 1009),
    ],
    ids=[
        "unmasked",
        "reserved bit",
        "unknown opcode",
        "long control frame",
        "fragmented control frame",
        "continuation of nothing",
        "new message inside a fragmented one",
        "over the cap",
    ],
)
def test_what_a_client_may_not_send_is_refused(data: bytes, code: int) -> None:
    with pytest.raises(ProtocolError) as refused:
        FrameParser().feed(data)
    assert refused.value.code == code


def test_an_oversized_frame_is_refused_from_its_header_alone() -> None:
    head = struct.pack("!BBQ", 0x82, 0x80 | 127, 1 << 40)
    with pytest.raises(ProtocolError) as refused:
        FrameParser().feed(head)
    assert refused.value.code == 1009


@pytest.mark.parametrize(
    ("payload", "code"),
    [(b"", 1005), (struct.pack("!H", 1001), 1001), (struct.pack("!H", 4000) + b"ok", 4000)],
)
def test_close_codes_read(payload: bytes, code: int) -> None:
    assert frames.close_code(payload) == code


@pytest.mark.parametrize(
    "payload",
    [b"\x03", struct.pack("!H", 999), struct.pack("!H", 1005), struct.pack("!H", 1000) + b"\xff"],
)
def test_invalid_close_payloads_refused(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        frames.close_code(payload)
