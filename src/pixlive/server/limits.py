"""What one connection may send and how long it may take: the edge's limits, from the
settings (docs/security.md lists each one)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from pixlive.settings import Settings


@dataclass(frozen=True, slots=True)
class Limits:
    request_line: int = 8192
    header: int = 8192
    headers_total: int = 32768
    headers: int = 100
    head_timeout: float = 10.0
    body_timeout: float = 10.0
    keepalive_timeout: float = 5.0
    connections: int = 60_000
    body: int = 1 << 20
    # Origins allowed to open a charge's stream; b"" stands for a request with no Origin.
    origins: frozenset[bytes] = frozenset({b""})

    @property
    def head(self) -> int:
        """Raw bytes a request head may take before it is refused, whatever its shape: the
        parser holds an unfinished header whole, so this bounds what it buffers."""
        return self.request_line + self.headers_total + 4 * self.headers + 4

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            request_line=settings.max_request_line_bytes,
            header=settings.max_header_bytes,
            headers_total=settings.max_headers_bytes,
            headers=settings.max_headers,
            head_timeout=settings.head_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            keepalive_timeout=settings.keepalive_timeout_seconds,
            connections=settings.max_connections,
            body=settings.max_body_bytes,
            origins=allowed_origins(settings.allowed_origins, settings.public_url),
        )


def origin_of(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins(setting: str | None, public_url: str) -> frozenset[bytes]:
    if setting is None or not setting.strip():
        names = [origin_of(public_url)]
    else:
        names = [item.strip().rstrip("/").lower() for item in setting.split(",") if item.strip()]
    return frozenset({b"", *(name.encode() for name in names)})
