"""A merchant's webhook receiver on loopback, for the tests: it records every request,
verifies each with the Standard Webhooks library from PyPI, and answers as told."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import standardwebhooks


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


# (the request's number at this receiver, from 1; the request) → (status, headers, body)
Behaviour = Callable[[int, Received], tuple[int, dict[str, str], bytes]]


def always_ok(number: int, received: Received) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, b"ok"


@dataclass
class Receiver:
    behaviour: Behaviour = always_ok
    secrets: list[str] = field(default_factory=list)
    # For a receiver behind several endpoints: the secrets by request path.
    secrets_by_path: dict[str, list[str]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self, path: str, headers: dict[str, str], body: bytes) -> bool:
        """Verified when the library accepts the request under every secret set."""
        secrets = self.secrets_by_path.get(path, self.secrets)
        if not secrets:
            return False
        for secret in secrets:
            try:
                standardwebhooks.Webhook(secret).verify(body, headers)
            except standardwebhooks.WebhookVerificationError:
                return False
        return True

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 30
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                seen = list(self.received)
            if predicate(seen):
                return seen
            time.sleep(0.02)
        with self.lock:
            seen = list(self.received)
        raise AssertionError(f"the receiver saw {len(seen)} requests: {[r.body for r in seen]}")

    def wait_count(self, count: int, timeout: float = 30) -> list[Received]:
        return self.wait_for(lambda seen: len(seen) >= count, timeout)


@contextmanager
def receiver(
    behaviour: Behaviour = always_ok, *, port: int = 0, state: Receiver | None = None
) -> Iterator[Receiver]:
    """Listening on `port` (a free one by default); `state` carries what an earlier receiver
    on that port saw, for one that comes back."""
    state = state or Receiver(behaviour)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            item = Received(
                self.path, headers, body, state.verify(self.path, headers, body), time.monotonic()
            )
            with state.lock:
                state.received.append(item)
                number = len(state.received)
            status, extra, answer = state.behaviour(number, item)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
