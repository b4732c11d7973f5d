"""The benchmark harness: starts real servers (through `pixlive.testing.launcher`), drives
them from separate client processes (`bench.client`), and collects the figures that
`bench.report` writes. What is measured is data, in `bench.scenarios`; this module holds
the runners those scenarios name.
"""

from __future__ import annotations

import asyncio
import math
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson

from bench import machine, profile
from bench.scenarios import MODES, SCENARIOS, SERVERS, Scenario, ServerSpec, pick
from pixlive.testing.launcher import (
    Server,
    clean_env,
    free_port,
    pixlive,
    server_env,
    start_process,
    start_server,
)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_bench_" + "b" * 24
VALOR = "12.34"
LATENCY_KEYS = ["p50", "p90", "p99", "max", "mean"]
PIN_SERVER, PIN_CLIENTS = {0}, {1}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# Statistics ----------------------------------------------------------------


def percentile(ordered: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the samples at or below it."""
    if not ordered:
        return float("nan")
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def describe(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    stats = {f"p{p}": percentile(ordered, p) for p in (50, 90, 99)}
    nan = float("nan")
    stats.update(
        n=len(ordered),
        max=ordered[-1] if ordered else nan,
        mean=sum(ordered) / len(ordered) if ordered else nan,
    )
    return stats


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max over the repetitions."""
    clean = sorted(v for v in values if v == v)  # no NaN
    if not clean:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    mid = len(clean) // 2
    median = clean[mid] if len(clean) % 2 else (clean[mid - 1] + clean[mid]) / 2
    return {"median": median, "min": clean[0], "max": clean[-1]}


def summarise(reps: list[dict[str, Any]], keys: list[str]) -> dict[str, dict[str, float]]:
    return {key: spread([float(r[key]) for r in reps if key in r]) for key in keys}


def split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def entry(labels: dict[str, Any], reps: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """What the results keep of a figure's repetitions: the labels, the spread of each key,
    and the counts of what went wrong."""
    return {
        **labels,
        "reps": len(reps),
        "summary": summarise(reps, keys),
        **{k: sum(int(r.get(k, 0)) for r in reps) for k in ("lost", "idle_dropped", "not_paid")},
        "samples": sum(int(r.get("n", 0)) for r in reps),
    }


# Client processes ----------------------------------------------------------------


class ClientProc:
    """One `python -m bench.client` process, spoken to one JSON command a line at a time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self.lock = asyncio.Lock()

    async def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.client",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=1 << 28,
        )
        await self.read(60)

    async def read(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"client {self.name} exited ({self.proc.returncode})")
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    async def call(self, cmd: str, timeout: float = 600, **args: Any) -> dict[str, Any]:
        async with self.lock:
            assert self.proc is not None and self.proc.stdin is not None
            self.proc.stdin.write(orjson.dumps({"cmd": cmd, **args}) + b"\n")
            await self.proc.stdin.drain()
            answer = await self.read(timeout)
        if not answer.get("ok"):
            raise RuntimeError(f"client {self.name} {cmd}: {answer.get('error')}")
        return answer

    def pin(self, cores: set[int] | None) -> None:
        assert self.proc is not None
        os.sched_setaffinity(self.proc.pid, cores or set(range(os.cpu_count() or 1)))

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            await self.call("exit", timeout=30)
            await asyncio.wait_for(self.proc.wait(), 10)
        except Exception:
            self.proc.kill()
            await self.proc.wait()


# Servers ----------------------------------------------------------------


class Target:
    """A running server the bench measures, with the charges seeded for it."""

    def __init__(self, name: str, spec: ServerSpec, server: Server, seed: Callable[[int], Any]):
        self.name, self.spec, self.server = name, spec, server
        self.ids: list[str] = []
        self.seed_more = seed  # (n) -> ids: more ACTIVE charges in the server's database
        self.pooled = False  # has held an idle pool (its RSS no longer shows a new one)
        self.pair: Target | None = None  # the second worker, for the pair scenario
        self.pg_database: str | None = None

    @property
    def addr(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.server.port}

    async def take(self, n: int) -> list[str]:
        if len(self.ids) < n:
            self.ids += await asyncio.to_thread(self.seed_more, n - len(self.ids) + 100)
        taken, self.ids = self.ids[:n], self.ids[n:]
        return taken

    def stop(self) -> None:
        for target in (self.pair, self):
            if target is not None:
                target.server.stop()


def pixlive_settings(database_url: str, bus_url: str) -> dict[str, str]:
    return {
        "PIXLIVE_ENV": "production",
        "PIXLIVE_DATABASE_URL": database_url,
        "PIXLIVE_BUS_URL": bus_url,
        "PIXLIVE_WEBHOOK_SECRET": SECRET,
        "PIXLIVE_PIX_KEY": "bench@pixlive.example",
        "PIXLIVE_MERCHANT_NAME": "Loja Bench",
        "PIXLIVE_MERCHANT_CITY": "Sao Paulo",
    }


def seed_pixlive(env: dict[str, str], workdir: Path, n: int) -> list[str]:
    """n ACTIVE charges in the server's database, made by `bench.seed` in a process of its
    own (through the HTTP API they would take longer than the measurements)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.seed", str(n)],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"bench.seed failed: {done.stderr[-3000:]}")
    return done.stdout.split()


def start_pixlive(
    spec: ServerSpec, workdir: Path, database_url: str, bus_url: str, migrate: bool = True
) -> Server:
    overrides = {**pixlive_settings(database_url, bus_url), **spec.settings}
    if migrate:
        done = pixlive(server_env(workdir, 0, **overrides), workdir, "migrate")
        if done.returncode:
            raise RuntimeError(f"pixlive migrate failed: {done.stderr[-3000:]}")
    return start_server(
        workdir,
        migrate=False,
        # the bench seeds its charges beforehand, and the live routes are public
        api_key=None if spec.api_key else "",
        prefix=("taskset", "-c", "0") if spec.pin else (),
        timeout=120,  # several start at once, on a machine the clients share
        **overrides,
    )


def start_baseline(spec: ServerSpec, workdir: Path) -> Server:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = workdir / "baseline.db"
    command = [
        *(("taskset", "-c", "0") if spec.pin else ()),
        sys.executable,
        "-m",
        "bench.baseline.server",
        *("--db", str(db), "--port", str(port), "--secret", SECRET),
        *("--synchronous", spec.synchronous),
    ]
    env = clean_env()
    env["PYTHONPATH"] = str(ROOT)
    process, log_path = start_process(command, env=env, workdir=workdir, url=url, timeout=120)
    return Server(url, "", SECRET, env, workdir, process, log_path)


async def pg_admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def reachable(url: str, port: int) -> bool:
    import socket

    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or port), 1):
            return True
    except OSError:
        return False


# The run's context ----------------------------------------------------------------


class Bench:
    def __init__(self, mode: str, workdir: Path, pg: str | None, redis: str | None) -> None:
        self.mode, self.cfg = mode, MODES[mode]
        self.workdir, self.pg, self.redis = workdir, pg, redis
        self.clients: list[ClientProc] = []
        self.measure = ClientProc("measure")
        self.shared: dict[str, Target] = {}
        self.running: list[Target] = []
        self.counter = 0
        self.results: dict[str, list[dict[str, Any]]] = {
            k: [] for k in ("latency", "rss", "throughput", "pinned", "two_workers", "webhooks")
        }
        self.results.update(transports=[], webhook_only=[])
        self.notes: list[str] = []
        self.profile: dict[str, Any] | None = None

    async def start_clients(self, n: int) -> None:
        self.clients = [ClientProc(f"client-{i}") for i in range(n)]
        await asyncio.gather(self.measure.start(), *(c.start() for c in self.clients))

    async def more_clients(self, n: int) -> None:
        extra = [ClientProc(f"client-{i}") for i in range(len(self.clients), n)]
        await asyncio.gather(*(c.start() for c in extra))
        self.clients += extra

    async def target(self, name: str, instance: str = "", seed: int = 0) -> Target:
        """A server of SERVERS[name] with `seed` charges ready: shared by (name, instance)
        in quick and smoke modes, fresh otherwise."""
        if not self.cfg["fresh"]:  # one PostgreSQL pair for every PostgreSQL scenario
            name = "pixlive-pg-pair" if name == "pixlive-pg" else name
        key = f"{name}#{instance}"
        if not self.cfg["fresh"] and key in self.shared:
            target = self.shared[key]
        else:
            target = await self.start(name)
            if not self.cfg["fresh"]:
                self.shared[key] = target
        if len(target.ids) < seed:
            target.ids += await asyncio.to_thread(target.seed_more, seed - len(target.ids))
        return target

    async def start(self, name: str) -> Target:
        spec = SERVERS[name]
        self.counter += 1
        workdir = self.workdir / f"{name}-{self.counter}"
        workdir.mkdir(parents=True)
        if spec.kind == "baseline":
            from bench.baseline.server import seed

            server = await asyncio.to_thread(start_baseline, spec, workdir)
            db = str(workdir / "baseline.db")
            target = Target(name, spec, server, lambda n: seed(db, n))
        else:
            bus = "memory://"
            url = f"sqlite+aiosqlite:///{workdir}/pixlive.db"
            database = None
            if spec.database == "postgresql":
                assert self.pg is not None
                database = "pixlive_bench_" + secrets.token_hex(5)
                await pg_admin(self.pg, f'CREATE DATABASE "{database}"')
                url = urlparse(self.pg)._replace(path="/" + database).geturl()
                url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
                bus = self.redis or "memory://"
            server = await asyncio.to_thread(start_pixlive, spec, workdir, url, bus)
            env = server_env(workdir, 0, **pixlive_settings(url, bus))
            target = Target(name, spec, server, lambda n: seed_pixlive(env, workdir, n))
            target.pg_database = database
            if spec.second:
                other = await asyncio.to_thread(
                    start_pixlive, spec, workdir / "second", url, bus, False
                )
                target.pair = Target(name + "-b", spec, other, target.seed_more)
        self.running.append(target)
        return target

    async def release(self, target: Target) -> None:
        if self.cfg["fresh"]:
            await self.stop(target)

    async def stop(self, target: Target) -> None:
        await asyncio.to_thread(target.stop)
        self.running.remove(target)
        if target.pg_database and self.pg:
            sql = f'DROP DATABASE IF EXISTS "{target.pg_database}" WITH (FORCE)'
            try:
                await pg_admin(self.pg, sql)
            except Exception as exc:  # a leftover database is not worth failing the run for
                log(f"could not drop {target.pg_database}: {exc}")
        shutil.rmtree(target.server.workdir, ignore_errors=True)

    async def close(self) -> None:
        procs = [*self.clients, self.measure]
        await asyncio.gather(*(c.stop() for c in procs), return_exceptions=True)
        for target in list(self.running):
            await self.stop(target)


class IdlePool:
    """Idle subscribers of one transport on one server, held by the given client processes."""

    def __init__(self, bench: Bench, target: Target, transport: str, procs: list[ClientProc]):
        self.bench, self.target, self.transport, self.procs = bench, target, transport, procs
        self.held = 0

    async def grow_to(self, size: int, spread_seconds: float = 0.0) -> None:
        add = size - self.held
        if add <= 0:
            return
        per_charge = self.bench.cfg["subs_per_charge"]
        shares = [s for s in split(add, len(self.procs)) if s]
        chunks = [await self.target.take(math.ceil(share / per_charge)) for share in shares]
        answers = await asyncio.gather(
            *(
                proc.call(
                    "subscribe",
                    target=self.target.addr,
                    transport=self.transport,
                    ids=ids,
                    count=share,
                    spread=spread_seconds,
                )
                for proc, share, ids in zip(self.procs, shares, chunks, strict=False)
            )
        )
        if failed := sum(a["failed"] for a in answers):
            errors = [e for a in answers for e in a["errors"]]
            raise RuntimeError(f"{failed} {self.transport} subscribers failed: {errors[:3]}")
        self.held += add

    async def alive(self) -> int:
        return sum(a["alive"] for a in await asyncio.gather(*(p.call("stats") for p in self.procs)))

    async def close(self) -> None:
        await asyncio.gather(*(p.call("close") for p in self.procs))
        self.held = 0


# Measurements ----------------------------------------------------------------


async def latency(
    bench: Bench, target: Target, transport: str, samples: int, hook: Target | None = None
) -> dict[str, Any]:
    """Webhook sent (to `hook`, default the same server) → `payment.paid` parsed by a
    subscriber of `target`, one fresh charge per sample."""
    ids = await (hook or target).take(samples)
    answer = await bench.measure.call(
        "latency",
        target=target.addr,
        hook_target=(hook or target).addr,
        transport=transport,
        ids=ids,
        secret=SECRET,
        valor=VALOR,
    )
    if answer["error_count"]:
        bench.notes.append(f"{target.name}/{transport}: {answer['errors'][:2]}")
    stats = describe(answer["latency_ms"])
    stats.update(lost=answer["lost"], errors=answer["error_count"])
    return stats


async def with_pool(pool: IdlePool, stats: dict[str, Any]) -> dict[str, Any]:
    stats["idle_dropped"] = pool.held - await pool.alive()
    return stats


async def confirmations(
    bench: Bench, target: Target, n: int, seconds: float, procs: list[ClientProc]
) -> dict[str, Any]:
    """n signed webhooks (or `seconds` of them) at the mode's concurrency, from `procs`,
    each a distinct charge and endToEndId; the server's CPU meanwhile."""
    conc = [c for c in split(bench.cfg["concurrency"], len(procs)) if c]
    procs = procs[: len(conc)]
    ids = await target.take(n)
    at = 0
    for proc, share, c in zip(procs, split(n, len(procs)), conc, strict=True):
        await proc.call(
            "prepare_throughput",
            target=target.addr,
            ids=ids[at : at + share],
            concurrency=c,
            secret=SECRET,
            valor=VALOR,
        )
        at += share
    cpu0 = target.server.cpu_seconds()
    answers = await asyncio.gather(*(p.call("throughput", duration=seconds) for p in procs))
    cpu1 = target.server.cpu_seconds()
    target.ids = [i for a in answers for i in a["unused"]] + target.ids
    latencies = [x for a in answers for x in a["latency_ms"]]
    done = len(latencies) or 1
    elapsed = max(a["end"] for a in answers) - min(a["start"] for a in answers)
    paid = sum(a["outcomes"].get("paid", 0) for a in answers)
    stats = describe(latencies)
    stats.update(
        rate=len(latencies) / elapsed if elapsed > 0 else float("nan"),
        not_paid=len(latencies) - paid,
        cpu_ms_per_confirmation=(cpu1 - cpu0) * 1000 / done,
        # the load generator's own CPU, on the same cores as the server's (unless pinned)
        client_cpu_ms_per_request=sum(a["cpu_seconds"] for a in answers) * 1000 / done,
    )
    return stats


# Runners: one per kind of scenario ----------------------------------------------------


async def growth(bench: Bench, sc: Scenario) -> None:
    """Latency at a growing number of idle subscribers, and the server's RSS per one. With
    several servers, their repetitions alternate."""
    cfg, sizes = bench.cfg, pick(sc.sizes, bench.mode)
    reps = pick(sc.reps, bench.mode) or cfg["reps"]
    outer, inner = (reps, 1) if cfg["fresh"] else (1, reps)
    runs = list(zip(sc.servers, sc.transports, strict=True))
    figures = {(s, t, n): [] for s, t in runs for n in sizes}  # type: ignore[var-annotated]
    memory = {(s, t, n): [] for s, t in runs for n in sizes}  # type: ignore[var-annotated]
    need = math.ceil(max(sizes) / cfg["subs_per_charge"]) + cfg["samples"] * (len(sizes) * inner)
    for _ in range(outer):
        for name, transport in runs:
            target = await bench.target(name, seed=need + 200)
            pool = IdlePool(bench, target, transport, bench.clients[: cfg["idle_procs"]])
            await latency(bench, target, transport, min(20, cfg["samples"]))  # warm-up
            await asyncio.sleep(0.5)
            # RSS means something only on a server that never held a pool: memory freed by
            # an earlier pool is reused without showing in RSS
            fresh_memory, target.pooled = not target.pooled, True
            rss0 = target.server.rss_kib()
            for size in sizes:
                await pool.grow_to(size)
                await asyncio.sleep(1.0 if size >= 1000 else 0.2)
                rss = target.server.rss_kib()
                if fresh_memory:
                    memory[name, transport, size].append(
                        {"kib_per_subscriber": (rss - rss0) / size, "rss_kib": rss}
                    )
                for _ in range(inner):
                    stats = await with_pool(
                        pool, await latency(bench, target, transport, cfg["samples"])
                    )
                    figures[name, transport, size].append(stats)
                    log(
                        f"{name} {transport} idle={size}: p50={stats['p50']:.2f} "
                        f"p99={stats['p99']:.2f} ms lost={stats['lost']}"
                    )
            await pool.close()
            await bench.release(target)
    for (name, transport, size), reps_ in figures.items():
        labels = {"server": SERVERS[name].kind, "transport": transport, "idle": size}
        found = entry(labels, reps_, LATENCY_KEYS)
        if (name, transport) == runs[0] and len(runs) > 1:
            other = figures[(*runs[1], size)]
            found["lower_in"] = {
                k: [sum(a[k] < b[k] for a, b in zip(reps_, other, strict=False)), len(other)]
                for k in ("p50", "p99")
            }
        bench.results[sc.section].append(found)
        if memory[name, transport, size]:
            labels = {**labels, "subscribers": labels.pop("idle")}
            rss = entry(labels, memory[name, transport, size], ["kib_per_subscriber", "rss_kib"])
            bench.results["rss"].append(rss)


THROUGHPUT_KEYS = [
    "rate",
    *LATENCY_KEYS,
    "cpu_ms_per_confirmation",
    "client_cpu_ms_per_request",
]


async def throughput(bench: Bench, sc: Scenario) -> None:
    """Durable confirmations/s at the mode's concurrency, per server and per size of an idle
    pool held meanwhile (0: none); a pinned server runs on core 0, its clients on core 1."""
    cfg = bench.cfg
    sizes = pick(sc.sizes, bench.mode)
    procs = bench.clients[: cfg["load_procs"]]
    idle_procs = bench.clients[cfg["load_procs"] : cfg["load_procs"] + 1] or procs
    for name, transport in zip(sc.servers, sc.transports * len(sc.servers), strict=False):
        spec = SERVERS[name]
        if spec.database == "postgresql" and not bench.pg:
            continue
        target = await bench.target(name, seed=min(cfg["max_requests"], 2000) + 400)
        pinned = [*procs, *idle_procs] if spec.pin and (os.cpu_count() or 1) > 1 else []
        for proc in pinned:
            proc.pin(PIN_CLIENTS)
        pool = IdlePool(bench, target, transport, idle_procs)
        try:
            warm = await confirmations(bench, target, min(300, cfg["max_requests"]), 0, procs)
            per_rep = cfg["max_requests"]
            if cfg["seconds"]:  # the warm-up's rate sizes the runs
                per_rep = min(per_rep, int(warm["rate"] * cfg["seconds"] * 1.6) + 300)
            for size in sizes:
                await pool.grow_to(size)
                reps = []
                for _ in range(cfg["reps"]):
                    stats = await confirmations(bench, target, per_rep, cfg["seconds"], procs)
                    reps.append(await with_pool(pool, stats))
                    log(
                        f"{sc.section} {name} idle={size}: {stats['rate']:.0f}/s "
                        f"p99={stats['p99']:.1f} ms CPU {stats['cpu_ms_per_confirmation']:.3f} "
                        f"ms/conf. not paid={stats['not_paid']}"
                    )
                labels = {
                    "server": spec.kind,
                    "database": spec.database,
                    "concurrency": cfg["concurrency"],
                    "idle": size,
                    "pinned": spec.pin,
                }
                if spec.kind == "baseline":
                    labels["synchronous"] = spec.synchronous
                found = entry(labels, reps, THROUGHPUT_KEYS)
                if sc.options.get("profile_each") and cfg["profile"] and spec.kind == "pixlive":
                    prof = await profile_run(bench, target, per_rep, procs, labels)
                    found["profile"] = prof and {k: prof[k] for k in ("busy_share", "self")}
                bench.results[sc.section].append(found)
            if sc.options.get("profile") and cfg["profile"]:
                bench.profile = await profile_run(bench, target, per_rep, procs, labels)
        finally:
            await pool.close()
            for proc in pinned:
                proc.pin(None)
        await bench.release(target)


async def profile_run(
    bench: Bench, target: Target, n: int, procs: list[ClientProc], labels: dict[str, Any]
) -> dict[str, Any] | None:
    """One more throughput run (not counted) with py-spy attached to the server."""
    if not profile.available():
        bench.notes.append("py-spy is not installed: no profile")
        return None
    out = bench.workdir / "profile.txt"
    seconds = max(2.0, bench.cfg["seconds"])
    recorder = await profile.start(target.server.pid, out, seconds + 1)
    await asyncio.sleep(0.5)
    stats = await confirmations(bench, target, n, seconds, procs)
    await profile.finish(recorder)
    return {**profile.summarise(out), "label": labels, "rate_while_profiled": stats["rate"]}


async def pair(bench: Bench, sc: Scenario) -> None:
    """The webhook to one `pixlive serve`, the page (and the idle pool) on another sharing
    the PostgreSQL database and the bus."""
    if not bench.pg:
        return
    cfg, (size,) = bench.cfg, pick(sc.sizes, bench.mode)
    outer, inner = (cfg["reps"], 1) if cfg["fresh"] else (1, cfg["reps"])
    reps: list[dict[str, Any]] = []
    need = math.ceil(size / cfg["subs_per_charge"]) + cfg["samples"] * (inner + 1) + 100
    for _ in range(outer):
        a = await bench.target(sc.servers[0], seed=need)
        assert a.pair is not None
        b = a.pair
        b.take = a.take  # type: ignore[method-assign]  # one database: B pages A's charges
        pool = IdlePool(bench, b, "ws", bench.clients[: cfg["idle_procs"]])
        await latency(bench, b, "ws", min(20, cfg["samples"]), hook=a)
        await pool.grow_to(size)
        await asyncio.sleep(0.5)
        for _ in range(inner):
            stats = await with_pool(pool, await latency(bench, b, "ws", cfg["samples"], hook=a))
            reps.append(stats)
            log(f"two workers: p50={stats['p50']:.2f} p99={stats['p99']:.2f} ms")
        await pool.close()
        await bench.release(a)
    labels = {"server": "pixlive", "database": "postgresql", "transport": "ws", "idle": size}
    labels["bus"] = "redis" if bench.redis else "memory"
    bench.results[sc.section].append(entry(labels, reps, LATENCY_KEYS))


COST_KEYS = ["bytes_in", "bytes_out", "bytes", "cpu_ms"]
COST_KEYS += [f"idle_{k}" for k in [*COST_KEYS, "cpu_ms_gross", "server_base_cpu_ms_per_s"]]


async def transports(bench: Bench, sc: Scenario) -> None:
    """Per transport: bytes on the subscriber's sockets and server CPU per delivered
    notification, and per idle subscriber-minute. Each transport has its own client process
    (bytes are per process) and, but in smoke mode, its own server process (CPU is per
    process); the idle windows of transports on different servers run at the same time."""
    cfg = bench.cfg
    runs = list(zip(sc.servers, sc.transports, strict=True))
    await bench.more_clients(len(runs))
    procs = {t: bench.clients[i] for i, (_, t) in enumerate(runs)}

    def instance(t: str) -> str:
        return "" if bench.mode == "smoke" or t in ("ws", "socketio") else t

    rounds: list[list[tuple[str, str]]] = []  # no two transports of a round share a server
    for run in runs:
        for r in rounds:
            if all((s, instance(t)) != (run[0], instance(run[1])) for s, t in r):
                r.append(run)
                break
        else:
            rounds.append([run])
    need = math.ceil(cfg["cost_idle"] / cfg["subs_per_charge"]) + cfg["cost_deliver"] * 2 + 100
    per: dict[str, list[dict[str, Any]]] = {t: [] for _, t in runs}
    webhook_only = []
    for _ in range(cfg["cost_reps"]):
        started = [await bench.target(s, instance(t), need) for s, t in runs]
        on = {t: s for (_, t), s in zip(runs, started, strict=True)}
        idle: dict[str, dict[str, Any]] = {}
        for group in rounds:
            idle.update(await idle_round(bench, [(t, on[t], procs[t]) for _, t in group]))
        for _, t in runs:  # delivery, one transport at a time
            target, proc = on[t], procs[t]
            ids = await target.take(cfg["cost_deliver"])
            ready = await proc.call(
                "subscribe", target=target.addr, transport=t, ids=ids, count=len(ids)
            )
            if ready["failed"]:
                raise RuntimeError(f"{t}: {ready['errors']}")
            await asyncio.sleep(min(0.5, cfg["cost_window"] / 4))
            c0 = target.server.cpu_seconds()
            got = await proc.call("deliver", target=target.addr, secret=SECRET, valor=VALOR)
            c1 = target.server.cpu_seconds()
            await proc.call("close")
            n, meter = max(1, got["delivered"]), got["meter"]
            cost = {k: meter[k] / n for k in ("bytes_in", "bytes_out")}
            cost.update(bytes=cost["bytes_in"] + cost["bytes_out"], cpu_ms=(c1 - c0) * 1000 / n)
            per[t].append({**cost, **{f"idle_{k}": v for k, v in idle[t].items()}})
            per[t][-1].update(lost=got["lost"], idle_dropped=idle[t]["dropped"])
            log(f"deliver {t}: {cost['bytes']:.0f} B, {cost['cpu_ms']:.2f} ms CPU/notification")
        # a webhook with nobody watching: what the CPU per notification includes anyway
        target = on["ws"]
        ids = await target.take(cfg["cost_deliver"])
        c0 = target.server.cpu_seconds()
        await procs["ws"].call("deliver", target=target.addr, secret=SECRET, valor=VALOR, ids=ids)
        webhook_only.append({"cpu_ms": (target.server.cpu_seconds() - c0) * 1000 / len(ids)})
        for target in {id(t): t for t in started}.values():
            await bench.release(target)
    for name, t in runs:
        labels = {"server": SERVERS[name].kind, "transport": t, "idle": cfg["cost_idle"]}
        bench.results[sc.section].append(entry(labels, per[t], COST_KEYS))
    bench.results["webhook_only"].append(entry({"server": "pixlive"}, webhook_only, ["cpu_ms"]))


async def idle_round(
    bench: Bench, group: list[tuple[str, Target, ClientProc]]
) -> dict[str, dict[str, Any]]:
    """Idle subscribers of each transport in `group` (each on its own server), measured over
    the same window, net of each server's own CPU rate with no subscriber."""
    cfg = bench.cfg
    targets = [s for _, s, _ in group]
    procs = [p for _, _, p in group]
    base0 = [(s.server.cpu_seconds(), time.perf_counter()) for s in targets]
    await asyncio.sleep(cfg["cost_base_window"])
    base = [
        (s.server.cpu_seconds() - c) / (time.perf_counter() - t)
        for s, (c, t) in zip(targets, base0, strict=True)
    ]
    pools = [IdlePool(bench, s, t, [p]) for t, s, p in group]
    await asyncio.gather(*(pool.grow_to(cfg["cost_idle"], cfg["cost_spread"]) for pool in pools))
    await asyncio.sleep(min(1.0, cfg["cost_window"] / 4))
    await asyncio.gather(*(p.call("reset_meter") for p in procs))
    cpu0, t0 = [s.server.cpu_seconds() for s in targets], time.perf_counter()
    await asyncio.sleep(cfg["cost_window"])
    cpu1, t1 = [s.server.cpu_seconds() for s in targets], time.perf_counter()
    stats = await asyncio.gather(*(p.call("stats") for p in procs))
    await asyncio.gather(*(pool.close() for pool in pools))
    minutes = cfg["cost_idle"] * (t1 - t0) / 60
    out = {}
    for (t, _, _), st, c0, c1, rate in zip(group, stats, cpu0, cpu1, base, strict=True):
        m = st["meter"]
        out[t] = {
            "bytes_in": m["bytes_in"] / minutes,
            "bytes_out": m["bytes_out"] / minutes,
            "bytes": (m["bytes_in"] + m["bytes_out"]) / minutes,
            "cpu_ms": max(0.0, (c1 - c0) - rate * (t1 - t0)) * 1000 / minutes,
            "cpu_ms_gross": (c1 - c0) * 1000 / minutes,
            "server_base_cpu_ms_per_s": rate * 1000,
            "dropped": cfg["cost_idle"] - st["alive"],
        }
    log(
        "idle: " + ", ".join(f"{t} {v['bytes']:.0f} B {v['cpu_ms']:.2f} ms" for t, v in out.items())
    )
    return out


async def webhooks(bench: Bench, sc: Scenario) -> None:
    """Merchant webhooks to endpoints held by a client process: the live path's latency
    without and with `endpoints` failing ones (answering 500, retried on the schedule),
    commit -> delivered at `rate` payments/s to one endpoint, then deliveries/s to
    `endpoints` endpoints."""
    cfg, opt = bench.cfg, {k: pick(v, bench.mode) for k, v in sc.options.items()}
    proc, n = bench.clients[0], opt["endpoints"]
    paced_n, burst = int(opt["rate"] * opt["seconds"]), opt["burst"]
    target = await bench.target(sc.servers[0], seed=cfg["samples"] * 2 + paced_n + burst + 40)
    http, auth = target.server.http, target.server.auth

    async def endpoints(ok: int, failing: int) -> list[str]:
        ports = (await proc.call("receivers", ok=ok, failing=failing))["ports"]
        made = []
        for port in ports:
            body = {"url": f"http://127.0.0.1:{port}/hook", "events": ["payment.paid"]}
            answer = await asyncio.to_thread(
                http.post, "/webhook-endpoints", json=body, headers=auth
            )
            assert answer.status_code == 201, answer.text
            made.append(answer.json()["id"])
        return made

    async def drop(made: list[str]) -> None:
        for endpoint in made:
            await asyncio.to_thread(http.delete, f"/webhook-endpoints/{endpoint}", headers=auth)

    async def paced(ids: list[str], rate: float, expect: int) -> dict[str, Any]:
        args = dict(target=target.addr, ids=ids, rate=rate, expect=expect, secret=SECRET)
        got = await proc.call("paced", valor=VALOR, **args)
        return {**describe(got["latency_ms"]), "lost": got["lost"], "rate": got["deliveries_per_s"]}

    await latency(bench, target, "ws", min(20, cfg["samples"]))  # warm-up
    live: dict[int, list[dict[str, Any]]] = {0: [], n: []}
    for _ in range(cfg["reps"]):  # alternating, as the machine's speed drifts
        live[0].append(await latency(bench, target, "ws", cfg["samples"]))
        failing = await endpoints(0, n)
        live[n].append(await latency(bench, target, "ws", cfg["samples"]))
        await drop(failing)
    for count, reps in live.items():
        labels = {"measure": "live", "transport": "ws", "failing_endpoints": count}
        bench.results[sc.section].append(entry(labels, reps, LATENCY_KEYS))
    one = await endpoints(1, 0)
    reps = [await paced(await target.take(paced_n), opt["rate"], 1) for _ in range(cfg["reps"])]
    labels = {"measure": "commit_to_delivered", "rate": opt["rate"], "endpoints": 1}
    bench.results[sc.section].append(entry(labels, reps, LATENCY_KEYS))
    await drop(one)
    many = await endpoints(n, 0)
    reps = [await paced(await target.take(burst), 0, n) for _ in range(cfg["reps"])]
    labels = {"measure": "deliveries", "endpoints": n, "payments": burst}
    bench.results[sc.section].append(entry(labels, reps, ["rate", *LATENCY_KEYS]))
    await drop(many)
    for e in bench.results[sc.section]:
        log(f"webhooks {e}"[:300])
    await bench.release(target)


RUNNERS: dict[str, Callable[[Bench, Scenario], Awaitable[None]]] = {
    "growth": growth,
    "throughput": throughput,
    "pair": pair,
    "transports": transports,
    "webhooks": webhooks,
}


# The run ----------------------------------------------------------------


async def run(
    mode: str,
    *,
    pg: str | None,
    redis: str | None,
    sections: list[str] | None = None,
    profiled: bool | None = None,
    workdir: Path | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    root = workdir or Path(tempfile.mkdtemp(prefix="pixlive-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.time()
    info = await asyncio.to_thread(machine.describe, root, pg, redis)
    bench = Bench(mode, root, pg, redis)
    if profiled is not None:
        bench.cfg = {**bench.cfg, "profile": profiled}
    if not pg:
        bench.notes.append("PostgreSQL was not reachable: its scenarios were skipped")
    if not redis:
        bench.notes.append("Redis was not reachable: the two-worker scenario used PostgreSQL alone")
    chosen = [
        sc
        for sc in SCENARIOS
        if (mode in sc.modes or mode == "check")
        and (not sections or sc.section in sections or sc.runner in sections)
    ]
    log(f"mode={mode} workdir={root} scenarios={len(chosen)}")
    try:
        await bench.start_clients(bench.cfg["idle_procs"] + bench.cfg["load_procs"])
        for sc in chosen:
            await RUNNERS[sc.runner](bench, sc)
    finally:
        await bench.close()
        if workdir is None and not keep:
            shutil.rmtree(root, ignore_errors=True)
    info.update(
        seconds=time.time() - started,
        load_after=os.getloadavg(),
        python_speed_ms_after=machine.python_speed_ms(),
    )
    config = {"mode": mode, **bench.cfg, "scenarios": [sc.__dict__ for sc in chosen]}
    return {
        "meta": info,
        "config": config,
        "results": bench.results,
        "profile": bench.profile,
        "notes": bench.notes,
    }
