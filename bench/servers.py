"""Servers the harness starts and measures: pixlive (`pixlive serve`, as an operator runs
it) on SQLite or PostgreSQL (+ Redis), and the baseline. Their RSS and CPU time come
from /proc/PID/status and /proc/PID/stat of the server process itself."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_bench_" + "b" * 24
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class Server:
    name: str
    kind: str  # "pixlive" or "baseline"
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    secret: str = SECRET
    api_key: str = ""
    ids: list[str] = field(default_factory=list)  # seeded charges, not used yet
    env: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    host = "127.0.0.1"

    @property
    def target(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port}

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kib(self) -> int:
        return proc_rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def take_ids(self, n: int) -> list[str]:
        if n > len(self.ids):
            raise RuntimeError(f"{self.name}: {n} charges wanted, {len(self.ids)} seeded left")
        taken, self.ids = self.ids[:n], self.ids[n:]
        return taken

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self) -> str:
        path = self.workdir / f"server-{self.port}.log"
        return path.read_text()[-3000:] if path.exists() else ""


def _python() -> str:
    return sys.executable


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXLIVE_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _run(env: dict[str, str], cwd: Path, *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [_python(), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _wait_healthy(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{server.log_tail()}")
        try:
            if httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.name} did not start:\n{server.log_tail()}")


def pixlive_env(database_url: str, port: int, bus_url: str = "memory://") -> dict[str, str]:
    return _env(
        {
            "PIXLIVE_ENV": "production",
            "PIXLIVE_DATABASE_URL": database_url,
            "PIXLIVE_BUS_URL": bus_url,
            "PIXLIVE_WEBHOOK_SECRET": SECRET,
            "PIXLIVE_PIX_KEY": "bench@pixlive.example",
            "PIXLIVE_MERCHANT_NAME": "Loja Bench",
            "PIXLIVE_MERCHANT_CITY": "Sao Paulo",
            "PIXLIVE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "PIXLIVE_LOG_LEVEL": "warning",
        }
    )


def start_pixlive(
    name: str,
    workdir: Path,
    database_url: str | None = None,
    *,
    bus_url: str = "memory://",
    seed: int = 0,
    migrate: bool = True,
) -> Server:
    """`pixlive migrate`, seeds charges (bench.seed), then `pixlive serve`. (No API key:
    the bench creates its charges beforehand, and the live routes are public.)"""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    database_url = database_url or f"sqlite+aiosqlite:///{workdir}/pixlive.db"
    env = pixlive_env(database_url, port, bus_url)
    if migrate:
        _run(env, workdir, "-m", "pixlive.cli", "migrate")
    ids = _run(env, workdir, "-m", "bench.seed", str(seed)).split() if seed else []
    log = (workdir / f"server-{port}.log").open("ab")
    process = subprocess.Popen(
        [_python(), "-m", "pixlive.cli", "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(name, "pixlive", port, workdir, process, SECRET)
    server.ids = ids
    server.env = env
    server.meta = {"database": database_url.split(":", 1)[0], "bus": bus_url.split(":", 1)[0]}
    _wait_healthy(server)
    return server


def start_baseline(name: str, workdir: Path, *, seed: int = 0, synchronous: str = "FULL") -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = _env({})
    ids_file = workdir / "seeded.txt"
    log = (workdir / f"server-{port}.log").open("ab")
    args = [
        _python(),
        "-m",
        "bench.baseline.server",
        "--db",
        str(workdir / "baseline.db"),
        "--port",
        str(port),
        "--secret",
        SECRET,
        "--synchronous",
        synchronous,
    ]
    if seed:
        args += ["--seed", str(seed), "--seed-out", str(ids_file)]
    process = subprocess.Popen(args, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    server = Server(name, "baseline", port, workdir, process, SECRET, "baseline")
    server.env = env
    server.meta = {"database": "sqlite", "synchronous": synchronous}
    _wait_healthy(server)
    if seed:
        server.ids = ids_file.read_text().split()
    return server


# PostgreSQL databases ----------------------------------------------------------------


def pg_reachable(admin_url: str) -> bool:
    parsed = urlparse(admin_url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5432), 1):
            return True
    except OSError:
        return False


def redis_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), 1):
            return True
    except OSError:
        return False


async def _pg_admin(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_pg_database(admin_url: str) -> tuple[str, str]:
    """A fresh database for one run: (its name, its postgresql+asyncpg:// URL)."""
    name = "pixlive_bench_" + secrets.token_hex(5)
    asyncio.run(_pg_admin(admin_url, f'CREATE DATABASE "{name}"'))
    parsed = urlparse(admin_url)
    url = parsed._replace(path="/" + name).geturl()
    return name, url.replace("postgresql://", "postgresql+asyncpg://", 1)


def drop_pg_database(admin_url: str, name: str) -> None:
    try:
        asyncio.run(_pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except Exception as exc:  # a leftover database is not worth failing the run for
        print(f"bench: could not drop {name}: {exc}", file=sys.stderr)


def cleanup_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
