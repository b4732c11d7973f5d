"""What the figures were measured on: machine, versions, date, command, disk fsync time."""

from __future__ import annotations

import asyncio
import os
import platform
import shlex
import sqlite3
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = "pixlive fastapi starlette uvicorn uvloop httptools websockets pydantic orjson asyncpg"
PACKAGES += " redis aiosqlite python-socketio python-engineio matplotlib py-spy"


def first(path: str, prefix: str) -> str:
    for line in Path(path).read_text().splitlines():
        if line.startswith(prefix):
            return line.split(":", 1)[1].strip()
    return "unknown"


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def fsync_ms(directory: Path, rounds: int = 50) -> float:
    """Median time of write(4 KiB) + fsync in the directory the databases live in."""
    path = directory / ".fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    times = []
    try:
        for _ in range(rounds):
            t = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return sorted(times)[rounds // 2]


def service_version(kind: str, url: str | None) -> str | None:
    if not url:
        return None
    try:
        if kind == "redis":
            import redis

            with redis.Redis.from_url(url, socket_timeout=5) as client:
                return str(client.info("server")["redis_version"])
        import asyncpg

        async def ask() -> str:
            conn = await asyncpg.connect(url, timeout=5)
            try:
                return str(await conn.fetchval("SHOW server_version"))
            finally:
                await conn.close()

        return asyncio.run(ask())
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"


def python_speed_ms(rounds: int = 5) -> float:
    """Median time of a fixed pure-Python loop (10**6 additions), in ms. The same machine
    has run it at speeds 2x apart from one hour to the next (a shared host): this figure,
    taken before and after a run, is how two runs compare."""
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        times.append((time.perf_counter() - t) * 1000)
    return sorted(times)[rounds // 2]


def describe(workdir: Path, pg: str | None, redis: str | None) -> dict[str, Any]:
    argv = [Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": os.environ.get("PIXLIVE_BENCH_COMMAND") or shlex.join(argv),
        "cpu": first("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "memory_gib": round(int(first("/proc/meminfo", "MemTotal").split()[0]) / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": service_version("postgresql", pg),
        "redis": service_version("redis", redis),
        "versions": {name: version(name) for name in PACKAGES.split()},
        "fsync_ms": fsync_ms(workdir),
        "load_before": os.getloadavg(),
        "python_speed_ms_before": python_speed_ms(),
    }
