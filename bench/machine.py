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

PACKAGES = [
    "pixlive",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "websockets",
    "pydantic",
    "orjson",
    "asyncpg",
    "redis",
    "aiosqlite",
    "python-socketio",
    "python-engineio",
    "matplotlib",
    "py-spy",
]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


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
    times.sort()
    return times[len(times) // 2]


async def _pg_version(url: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def pg_version(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return asyncio.run(_pg_version(url))
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"


def redis_version(url: str | None) -> str | None:
    if not url:
        return None
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=5)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"


def python_speed_ms(rounds: int = 5) -> float:
    """Median time of a fixed pure-Python loop (10**6 additions), in ms. The same machine
    has run it at speeds nearly 2x apart from one hour to the next (a shared host): this
    figure, taken before and after a run, is how two runs compare."""
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        times.append((time.perf_counter() - t) * 1000)
    return sorted(times)[rounds // 2]


def describe(workdir: Path, pg_admin: str | None, redis_url: str | None) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": os.environ.get("PIXLIVE_BENCH_COMMAND")
        or " ".join(
            shlex.quote(a) for a in [Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]
        ),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib(), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version(pg_admin),
        "redis": redis_version(redis_url),
        "versions": versions(),
        "fsync_ms": fsync_ms(workdir),
        "workdir": str(workdir),
        "load_before": os.getloadavg(),
        "python_speed_ms_before": python_speed_ms(),
    }
