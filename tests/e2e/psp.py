"""`pixlive psp-emulator` as a separate process on free ports, as a developer starts it."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import free_port, pixlive, server_env

PROFILE_PATHS = {
    "standard": ("/api/v2", "/oauth/token"),
    "efi": ("/v2", "/oauth/token"),
    "inter": ("/pix/v2", "/oauth/v2/token"),
}


@dataclass
class PspEmulator:
    dir: Path
    port: int
    public_port: int
    profile: str
    process: subprocess.Popen[bytes] | None
    log: Path
    settings: dict[str, str] = field(default_factory=dict)
    _http: httpx.Client | None = field(default=None, repr=False)

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.origin + PROFILE_PATHS[self.profile][0]

    @property
    def token_url(self) -> str:
        return self.origin + PROFILE_PATHS[self.profile][1]

    @property
    def public_url(self) -> str:
        return f"https://127.0.0.1:{self.public_port}"

    @property
    def credentials(self) -> dict[str, str]:
        return dict(json.loads((self.dir / "credentials.json").read_text()))

    def merchant_tls(self) -> ssl.SSLContext:
        """What pixlive presents to the PSP: its client certificate, trusting the PSP's CA."""
        context = ssl.create_default_context(cafile=str(self.dir / "ca.pem"))
        context.load_cert_chain(self.dir / "merchant-client.pem", self.dir / "merchant-client.key")
        return context

    def psp_tls(self) -> ssl.SSLContext:
        """What the PSP presents when it calls the merchant's webhook."""
        context = ssl.create_default_context(cafile=str(self.dir / "ca.pem"))
        context.load_cert_chain(self.dir / "psp-client.pem", self.dir / "psp-client.key")
        return context

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(verify=self.merchant_tls(), timeout=15)
        return self._http

    def token(self, scope: str | None = None) -> str:
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        creds = self.credentials
        answer = self.http.post(
            self.token_url, data=data, auth=(creds["client_id"], creds["client_secret"])
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def knobs(self, **values: Any) -> dict[str, Any]:
        answer = self.http.post(self.origin + "/_emulator/knobs", json=values)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def stats(self) -> dict[str, Any]:
        answer = self.http.get(self.origin + "/_emulator/stats")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def pay(self, code: str, *extra: str) -> subprocess.CompletedProcess[str]:
        env = server_env(self.dir, 0)
        return pixlive(env, self.dir, "psp-emulator", "pay", code, "--dir", str(self.dir), *extra)

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def init_emulator(directory: Path, profile: str = "standard") -> dict[str, str]:
    """`pixlive psp-emulator --init`: the certificates, and the settings it prints."""
    env = server_env(directory, 0)
    directory.mkdir(parents=True, exist_ok=True)
    done = pixlive(
        env, directory, "psp-emulator", "--init", "--dir", str(directory), "--profile", profile
    )
    assert done.returncode == 0, done.stderr
    settings = {}
    for line in done.stdout.splitlines():
        if line.startswith("PIXLIVE_") and "=" in line:
            name, _, value = line.partition("=")
            settings[name] = value
    return settings


def start_emulator(
    directory: Path,
    *,
    profile: str = "standard",
    port: int | None = None,
    public_port: int | None = None,
    init: bool = True,
    args: tuple[str, ...] = (),
) -> PspEmulator:
    port = port or free_port()
    public_port = public_port or free_port()
    settings = init_emulator(directory, profile) if init else {}
    log = directory / f"emulator-{port}.log"
    env = server_env(directory, 0)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pixlive.cli",
                "psp-emulator",
                "--dir",
                str(directory),
                "--port",
                str(port),
                "--public-port",
                str(public_port),
                "--profile",
                profile,
                *args,
            ],
            env=env,
            cwd=directory,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    emulator = PspEmulator(directory, port, public_port, profile, process, log)
    # The settings it printed name the default ports; these are the ports it listens on.
    emulator.settings = {
        **settings,
        "PIXLIVE_PSP_API_URL": emulator.api_url,
        "PIXLIVE_PSP_TOKEN_URL": emulator.token_url,
    }
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"emulator exited early:\n{log.read_text()}")
        try:
            emulator.stats()
            return emulator
        except (httpx.HTTPError, AssertionError):
            time.sleep(0.1)
    emulator.stop()
    raise RuntimeError(f"emulator did not start:\n{log.read_text()}")
