"""Whole HTTP/1.1 answers the connection writes itself: the error shape of every route,
the security headers, the server's default ones (date, server)."""

from __future__ import annotations

from http import HTTPStatus

import orjson

from pixlive.api import headers as security

Header = tuple[bytes, bytes]


def _phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


STATUS_LINES = {
    status: b"HTTP/1.1 %d %s\r\n" % (status, _phrase(status)) for status in range(100, 600)
}
JSON: list[Header] = [(b"content-type", b"application/json"), *security.WITH_CSP]


def error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message}})


def head(
    status: int,
    headers: list[Header],
    default: list[Header],
    *,
    close: bool,
    length: int | None,
) -> bytes:
    out = [STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
    out.extend(b"%s: %s\r\n" % pair for pair in default)
    out.extend(b"%s: %s\r\n" % pair for pair in headers)
    if close:
        out.append(b"connection: close\r\n")
    if length is not None:
        out.append(b"content-length: %d\r\n" % length)
    out.append(b"\r\n")
    return b"".join(out)


def whole(
    status: int,
    payload: bytes,
    default: list[Header],
    *,
    close: bool,
    extra: list[Header] | None = None,
    body: bool = True,
) -> bytes:
    """A JSON answer with its body, in one piece."""
    headers = [*JSON, *extra] if extra else JSON
    return head(status, headers, default, close=close, length=len(payload)) + (
        payload if body else b""
    )


def error(
    status: int,
    code: str,
    message: str,
    default: list[Header],
    *,
    close: bool = True,
    extra: list[Header] | None = None,
) -> bytes:
    return whole(status, error_body(code, message), default, close=close, extra=extra)
