"""A real pixlive server on a free port, started as a user would start it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from pixlive.services.psp import signed_headers, webhook_body

SECRET = "whsec_test_" + "x" * 24


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    api_key: str
    secret: str
    env: dict[str, str]
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # httpx.Client options for this server, e.g. {"verify": ssl_context} over (m)TLS.
    client_options: dict[str, Any] = field(default_factory=dict)
    _http: httpx.Client | None = field(default=None, repr=False)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def http(self) -> httpx.Client:
        """A keep-alive client with this server as its base URL (absolute URLs work too):
        much faster than `httpx.get`, which builds a client (and its TLS context) per call."""
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, timeout=30, **self.client_options)
        return self._http

    def create_charge(self, value: str = "12.34", **fields: Any) -> dict[str, Any]:
        answer = self.http.post(
            f"{self.url}/payments/pix", json={"value": value, **fields}, headers=self.auth
        )
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def pay(
        self, payment_id: str, valor: str = "12.34", end_to_end_id: str | None = None
    ) -> httpx.Response:
        body = webhook_body(payment_id, valor, end_to_end_id)
        return self.http.post(
            f"{self.url}/payments/pix/confirmation",
            content=body,
            headers=signed_headers(self.secret, body),
        )

    def webhook(
        self,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        path: str = "/payments/pix/confirmation",
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POSTs raw bytes to the webhook, correctly signed unless `headers` is given."""
        return self.http.post(
            self.url + path,
            content=body,
            headers=signed_headers(self.secret, body) if headers is None else headers,
            params=params,
        )

    def charge(self, payment_id: str, *, merchant: bool = True) -> dict[str, Any]:
        """The charge as JSON: the merchant's view, or the public one."""
        answer = self.http.get(
            f"{self.url}/payments/pix/{payment_id}", headers=self.auth if merchant else {}
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def charges(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every charge, newest first, following the cursor through all pages."""
        found: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": "100"}
        if status:
            params["status"] = status
        while True:
            answer = self.http.get(f"{self.url}/payments/pix", params=params, headers=self.auth)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            found.extend(page["data"])
            if not page["next_cursor"]:
                return found
            params["cursor"] = page["next_cursor"]

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Runs `pixlive ARGS` with this server's settings (same database, same secret)."""
        return pixlive({**self.env, **env}, self.workdir, *args)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def assert_error(answer: httpx.Response, status: int, code: str | None = None) -> None:
    """The answer is `status` with the error shape `{"error": {"code", "message"}}`."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body = answer.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert re.fullmatch(r"[a-z][a-z0-9_]*", body["error"]["code"]), body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body


def pixlive(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pixlive.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def server_env(
    workdir: Path, port: int, *, unset: tuple[str, ...] = (), **overrides: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXLIVE_")}
    env.update(
        PIXLIVE_ENV="sandbox",
        PIXLIVE_DATABASE_URL=f"sqlite+aiosqlite:///{workdir}/pixlive.db",
        PIXLIVE_WEBHOOK_SECRET=SECRET,
        PIXLIVE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        PIXLIVE_LOG_LEVEL="warning",
    )
    env.update(overrides)
    for name in unset:
        env.pop(name, None)
    return env


def start_server(
    workdir: Path,
    *,
    port: int | None = None,
    migrate: bool = True,
    api_key: str | None = None,
    workers: int = 1,
    unset: tuple[str, ...] = (),
    serve_args: tuple[str, ...] = (),
    client_options: dict[str, Any] | None = None,
    plain_uvicorn: bool = False,
    **overrides: str,
) -> Server:
    """Migrates, makes an API key, starts `pixlive serve` and waits for /healthz.

    `overrides` are PIXLIVE_* settings; `unset` names variables to leave out entirely.
    `serve_args` are more options of `pixlive serve` (with `--tls-cert` the server's URL is
    https://); `client_options` are the httpx options that reach it (e.g. `verify`, an SSL
    context with the CA and a client certificate), used for the readiness check too.
    `plain_uvicorn` runs the app under `uvicorn --factory` instead, as another ASGI server
    would (no `pixlive serve`, so no WebSocket protocol of its own)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    scheme = "https" if "--tls-cert" in serve_args else "http"
    if scheme == "https":
        overrides.setdefault("PIXLIVE_PUBLIC_URL", f"https://127.0.0.1:{port}")
    client_options = client_options or {}
    env = server_env(workdir, port, unset=unset, **overrides)
    if migrate:
        done = pixlive(env, workdir, "migrate")
        assert done.returncode == 0, done.stderr
    if api_key is None:
        made = pixlive(env, workdir, "apikey", "create", f"test-{port}")
        assert made.returncode == 0, made.stderr
        api_key = made.stdout.strip().splitlines()[-1]
    log = workdir / f"server-{port}.log"
    with log.open("ab") as out:
        command = (
            ["-m", "uvicorn", "pixlive.api.app:create_app", "--factory", "--port", str(port)]
            if plain_uvicorn
            else ["-m", "pixlive.cli", "serve", "--port", str(port), "--workers", str(workers)]
        )
        process = subprocess.Popen(
            [sys.executable, *command, *serve_args],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(
        f"{scheme}://127.0.0.1:{port}",
        api_key,
        env.get("PIXLIVE_WEBHOOK_SECRET", SECRET),
        env,
        workdir,
        process,
        log,
        client_options=client_options,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1, **client_options).status_code == 200:
                generated = workdir / ".pixlive-sandbox-secret"
                if "PIXLIVE_WEBHOOK_SECRET" not in env and generated.exists():
                    # Sandbox without a configured secret: the one `serve` generated.
                    server.secret = generated.read_text().strip()
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server did not start:\n{log.read_text()}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path / "server")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a whole test module, for tests that only add to what is there."""
    running = start_server(tmp_path_factory.mktemp("shared") / "server")
    try:
        yield running
    finally:
        running.stop()
