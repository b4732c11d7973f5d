"""A real server on a free port, started as a user would start it, for the tests, the bench
and the soak alike: `pixlive migrate`, `pixlive apikey create`, `pixlive serve`, then wait
for `/healthz`. `start_process` does the last two steps for any other server (the bench's
baseline)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pixlive.services.psp import signed_headers, webhook_body

SECRET = "whsec_test_" + "x" * 24
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_kib(self) -> int:
        """The server process's resident memory (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.pid}")

    def cpu_seconds(self) -> float:
        """utime + stime of the server process, all its threads."""
        text = Path(f"/proc/{self.pid}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

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


def pixlive(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI, with arguments we chose
        [sys.executable, "-m", "pixlive.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def clean_env() -> dict[str, str]:
    """This process's environment without any PIXLIVE_ setting (the caller's tests' or
    bench's own variables must not reach the server)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PIXLIVE_")}


def server_env(
    workdir: Path, port: int, *, unset: tuple[str, ...] = (), **overrides: str
) -> dict[str, str]:
    env = clean_env()
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


def start_process(
    command: Sequence[str],
    *,
    env: dict[str, str],
    workdir: Path,
    url: str,
    client_options: dict[str, Any] | None = None,
    timeout: float = 30,
) -> tuple[subprocess.Popen[bytes], Path]:
    """Starts `command` in `workdir` (output to server-PORT.log there) and waits until
    `url`/healthz answers 200; raises with the log if it exits or never answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"server-{url.rsplit(':', 1)[1]}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - a server of ours
            list(command), env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-5000:]}")
        try:
            answer = httpx.get(url + "/healthz", timeout=1, **(client_options or {}))
            if answer.status_code == 200:
                return process, log
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise RuntimeError(f"server did not start:\n{log.read_text()[-5000:]}")


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
    prefix: tuple[str, ...] = (),
    timeout: float = 30,
    **overrides: str,
) -> Server:
    """Migrates, makes an API key, starts `pixlive serve` and waits for /healthz.

    `overrides` are PIXLIVE_* settings; `unset` names variables to leave out entirely.
    `serve_args` are more options of `pixlive serve` (with `--tls-cert` the server's URL is
    https://); `client_options` are the httpx options that reach it (e.g. `verify`, an SSL
    context with the CA and a client certificate), used for the readiness check too.
    `plain_uvicorn` runs the app under `uvicorn --factory` instead, as another ASGI server
    would (no `pixlive serve`, so no WebSocket protocol of its own). `prefix` goes before
    the command, e.g. `("taskset", "-c", "0")`; `timeout` is how long /healthz may take."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    scheme = "https" if "--tls-cert" in serve_args else "http"
    if scheme == "https":
        overrides.setdefault("PIXLIVE_PUBLIC_URL", f"https://127.0.0.1:{port}")
    client_options = client_options or {}
    env = server_env(workdir, port, unset=unset, **overrides)
    if migrate:
        done = pixlive(env, workdir, "migrate")
        if done.returncode != 0:
            raise RuntimeError(f"pixlive migrate failed:\n{done.stderr}")
    if api_key is None:
        made = pixlive(env, workdir, "apikey", "create", f"test-{port}")
        if made.returncode != 0:
            raise RuntimeError(f"pixlive apikey create failed:\n{made.stderr}")
        api_key = made.stdout.strip().splitlines()[-1]
    command = (
        ["-m", "uvicorn", "pixlive.api.app:create_app", "--factory", "--port", str(port)]
        if plain_uvicorn
        else ["-m", "pixlive.cli", "serve", "--port", str(port), "--workers", str(workers)]
    )
    url = f"{scheme}://127.0.0.1:{port}"
    process, log = start_process(
        [*prefix, sys.executable, *command, *serve_args],
        env=env,
        workdir=workdir,
        url=url,
        client_options=client_options,
        timeout=timeout,
    )
    server = Server(
        url,
        api_key,
        env.get("PIXLIVE_WEBHOOK_SECRET", SECRET),
        env,
        workdir,
        process,
        log,
        client_options=client_options,
    )
    generated = workdir / ".pixlive-sandbox-secret"
    if "PIXLIVE_WEBHOOK_SECRET" not in env and generated.exists():
        # Sandbox without a configured secret: the one `serve` generated.
        server.secret = generated.read_text().strip()
    return server
