"""The WebSocket protocol (RFC 6455) as a server speaks it, without I/O: the handshake's
answer, the frames we send, and a parser for what a client sends.

A charge stream only ever sends; its clients have nothing to say but pings, pongs and a
close. So the parser keeps no message, only checks the framing and caps its size, and a
data frame's payload is skipped without being unmasked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE = 4096  # bytes a client may send in one message; nothing it sends needs more


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class ProtocolError(Exception):
    """The client broke the protocol: close the connection with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Frame:
    opcode: Opcode
    payload: bytes  # unmasked for control frames; empty for data frames (never read)


def accept_key(key: str) -> str | None:
    """The Sec-WebSocket-Accept for a client's key, or None when the key is not one."""
    try:
        raw = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 16:
        return None
    # SHA-1 is what RFC 6455 names; the accept key proves a WebSocket server, not a secret.
    digest = hashlib.sha1(key.strip().encode() + GUID, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


def frame(opcode: Opcode, payload: bytes) -> bytes:
    """A whole, unmasked frame (a server never masks)."""
    size = len(payload)
    head = 0x80 | opcode
    if size < 126:
        return struct.pack("!BB", head, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", head, 126, size) + payload
    return struct.pack("!BBQ", head, 127, size) + payload


def text(payload: str) -> bytes:
    return frame(Opcode.TEXT, payload.encode())


def close(code: int, reason: str = "") -> bytes:
    # A control frame's payload is at most 125 bytes: 2 for the code, the rest the reason.
    return frame(Opcode.CLOSE, struct.pack("!H", code) + reason.encode()[:123])


def close_code(payload: bytes) -> int:
    """The code of a client's close frame (1005 when it gave none); invalid ones refused."""
    if not payload:
        return 1005
    if len(payload) == 1:
        raise ProtocolError(1002, "close frame of one byte")
    (code,) = struct.unpack("!H", payload[:2])
    if not (code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        raise ProtocolError(1002, "invalid close code")
    try:
        payload[2:].decode()
    except UnicodeDecodeError as exc:
        raise ProtocolError(1007, "close reason is not UTF-8") from exc
    return int(code)


def _unmask(payload: bytes, mask: bytes) -> bytes:
    key = int.from_bytes((mask * (len(payload) // 4 + 1))[: len(payload)], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(len(payload), "big")


class FrameParser:
    """Feeds on the bytes a client sends; gives back its control frames and the data
    frames' opcodes. Raises ProtocolError on anything RFC 6455 forbids a client to send."""

    __slots__ = ("_buffer", "_in_message", "_message_size")

    def __init__(self) -> None:
        self._buffer = b""
        self._in_message = False
        self._message_size = 0

    def feed(self, data: bytes) -> list[Frame]:
        buffer = self._buffer + data if self._buffer else data
        frames: list[Frame] = []
        offset = 0
        end = len(buffer)
        while end - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            if first & 0x70:
                raise ProtocolError(1002, "reserved bits set without an extension")
            if not second & 0x80:
                raise ProtocolError(1002, "a client's frames must be masked")
            size = second & 0x7F
            start = offset + 2
            if size == 126:
                if end - start < 2:
                    break
                (size,) = struct.unpack_from("!H", buffer, start)
                start += 2
            elif size == 127:
                if end - start < 8:
                    break
                (size,) = struct.unpack_from("!Q", buffer, start)
                start += 8
            opcode = _opcode(first, size)
            if end - start < 4 + size:
                break
            if opcode < Opcode.CLOSE:
                self._follow(first, opcode, size)
            payload = b""
            if opcode >= Opcode.CLOSE and size:
                payload = _unmask(buffer[start + 4 : start + 4 + size], buffer[start : start + 4])
            frames.append(Frame(opcode, payload))
            offset = start + 4 + size
        self._buffer = buffer[offset:]
        return frames

    def _follow(self, first: int, opcode: Opcode, size: int) -> None:
        """Fragments must continue a message, and a message stays under MAX_MESSAGE."""
        if opcode is Opcode.CONTINUATION:
            if not self._in_message:
                raise ProtocolError(1002, "continuation without a message")
        elif self._in_message:
            raise ProtocolError(1002, "a new message before the last one ended")
        else:
            self._message_size = 0
        self._message_size += size
        if self._message_size > MAX_MESSAGE:
            raise ProtocolError(1009, "message too big")
        self._in_message = not first & 0x80


def _opcode(first: int, size: int) -> Opcode:
    """What can be refused from a frame's header alone, before its payload arrives."""
    try:
        opcode = Opcode(first & 0x0F)
    except ValueError:
        raise ProtocolError(1002, "unknown opcode") from None
    if opcode >= Opcode.CLOSE:
        if not first & 0x80 or size > 125:
            raise ProtocolError(1002, "control frames are whole and at most 125 bytes")
    elif size > MAX_MESSAGE:
        raise ProtocolError(1009, "message too big")
    return opcode
