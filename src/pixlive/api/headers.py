"""The security headers of every HTTP answer: one list, for the middleware and for the
routes served outside it (the webhook's fast path, the WebSocket protocol's refusals)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# Swagger UI at /docs, served from our origin and started from a file: the same policy.
DOCS_CSP = CSP
BASE: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    # The charge id in the URL is what lets one read it: never leak it to another site.
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
WITH_CSP: list[tuple[bytes, bytes]] = [*BASE, (b"content-security-policy", CSP.encode())]
DOCS_HEADERS: list[tuple[bytes, bytes]] = [*BASE, (b"content-security-policy", DOCS_CSP.encode())]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = DOCS_HEADERS if scope["path"].startswith("/docs") else WITH_CSP

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, add_headers)
