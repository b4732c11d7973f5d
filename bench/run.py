"""The benchmark harness: starts real servers, drives them from separate client processes,
and collects the figures that `bench.report` writes to docs/benchmarks.{md,json}.

Modes: `full` (make bench), `quick` (make bench-quick), `smoke` (the test suite).
In full mode every repetition gets fresh servers (and a fresh idle pool); in quick and
smoke modes the servers are shared between scenarios and repetitions, to fit the time.
"""

from __future__ import annotations

import asyncio
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import servers as srv
from bench.servers import Server

VALOR = "12.34"


@dataclass
class Config:
    mode: str
    reps: int
    ws_sizes: list[int]
    sse_sizes: list[int]
    lp_sizes: list[int]
    samples: int
    subs_per_charge: int
    throughput_per_rep: int
    throughput_seconds: float
    throughput_concurrency: int
    throughput_procs: int
    pair_idle: int
    cost_idle: int
    cost_window: float
    cost_spread: float
    cost_base_window: float
    cost_deliver: int
    idle_procs: int
    fresh: bool
    cost_shared: bool = False
    cost_reps: int | None = None  # default: reps
    # The WebSocket comparison with the baseline: its figures are close at low sizes and
    # the machine's speed drifts, so more repetitions than elsewhere (default: reps)
    latency_reps: int | None = None
    prewarm_seed: int = 3000
    baseline_normal: bool = True
    profile: bool = False
    scenarios: list[str] = field(
        default_factory=lambda: ["latency", "throughput", "two_workers", "transports"]
    )

    @classmethod
    def for_mode(cls, mode: str) -> Config:
        if mode == "full":
            return cls(
                mode=mode,
                reps=3,
                ws_sizes=[1, 100, 1000, 10000],
                sse_sizes=[1000, 10000],
                lp_sizes=[1000],
                samples=200,
                subs_per_charge=10,
                throughput_per_rep=15000,
                throughput_seconds=5,
                throughput_concurrency=50,
                throughput_procs=2,
                pair_idle=1000,
                cost_idle=1000,
                cost_window=40,
                cost_spread=25,
                cost_base_window=5,
                cost_deliver=500,
                idle_procs=4,
                fresh=True,
                profile=True,
                latency_reps=5,
            )
        if mode == "quick":
            return cls(
                mode=mode,
                reps=3,
                ws_sizes=[1, 100, 1000],
                sse_sizes=[300],
                lp_sizes=[300],
                samples=40,
                subs_per_charge=10,
                throughput_per_rep=4000,
                throughput_seconds=1,
                throughput_concurrency=50,
                throughput_procs=2,
                pair_idle=100,
                cost_idle=200,
                cost_window=20,
                cost_spread=20,
                cost_base_window=2,
                cost_deliver=100,
                cost_reps=1,
                idle_procs=2,
                fresh=False,
                baseline_normal=False,
                prewarm_seed=8000,
            )
        if mode == "smoke":
            return cls(
                mode=mode,
                reps=1,
                ws_sizes=[5],
                sse_sizes=[5],
                lp_sizes=[5],
                samples=20,
                subs_per_charge=5,
                throughput_per_rep=20,
                throughput_seconds=0,
                throughput_concurrency=5,
                throughput_procs=1,
                pair_idle=5,
                cost_idle=5,
                cost_window=1,
                cost_spread=0,
                cost_base_window=0.25,
                cost_deliver=5,
                idle_procs=1,
                fresh=False,
                cost_shared=True,
                baseline_normal=False,
            )
        raise ValueError(f"unknown mode {mode}")


# Statistics ----------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the samples at or below it."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def describe(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else float("nan"),
        "mean": sum(ordered) / len(ordered) if ordered else float("nan"),
    }


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max over the repetitions."""
    clean = sorted(v for v in values if v == v)  # drop NaN
    if not clean:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    mid = len(clean) // 2
    median = clean[mid] if len(clean) % 2 else (clean[mid - 1] + clean[mid]) / 2
    return {"median": median, "min": clean[0], "max": clean[-1]}


def summarise(reps: list[dict[str, Any]], keys: list[str]) -> dict[str, dict[str, float]]:
    return {key: spread([float(r[key]) for r in reps if key in r]) for key in keys}


# Client processes ----------------------------------------------------------------


class ClientProc:
    """One `python -m bench.client` process, spoken to one command at a time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(srv.ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.client",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=1 << 28,
        )
        hello = await self._read(60)
        if not hello.get("hello"):
            raise RuntimeError(f"client {self.name} did not start: {hello}")

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"client {self.name} exited (code {self.proc.returncode})")
        result: dict[str, Any] = orjson.loads(line)
        return result

    async def call(self, cmd: str, timeout: float = 600, **args: Any) -> dict[str, Any]:
        async with self._lock:
            assert self.proc is not None and self.proc.stdin is not None
            self.proc.stdin.write(orjson.dumps({"cmd": cmd, **args}) + b"\n")
            await self.proc.stdin.drain()
            answer = await self._read(timeout)
        if not answer.get("ok"):
            raise RuntimeError(f"client {self.name} {cmd}: {answer.get('error')}")
        return answer

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            await self.call("exit", timeout=30)
            await asyncio.wait_for(self.proc.wait(), 10)
        except Exception:
            self.proc.kill()
            await self.proc.wait()


# The run's context ----------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class Context:
    def __init__(self, cfg: Config, workdir: Path, pg_admin: str | None, redis_url: str | None):
        self.cfg = cfg
        self.workdir = workdir
        self.pg_admin = pg_admin
        self.redis_url = redis_url
        self.clients: list[ClientProc] = []
        self.measure: ClientProc | None = None
        self.shared: dict[str, Server] = {}
        self.started: list[Server] = []
        self.pg_databases: list[str] = []
        self.pending: dict[str, asyncio.Task[Server]] = {}
        self.pending_pg: asyncio.Task[Any] | None = None
        self.counter = 0
        self.results: dict[str, list[dict[str, Any]]] = {
            "latency": [],
            "rss": [],
            "throughput": [],
            "two_workers": [],
            "transports": [],
            "webhook_only": [],
        }
        self.notes: list[str] = []
        self.profile: dict[str, Any] | None = None
        self.baseline_available = _has_module("socketio")

    # processes

    async def start_clients(self, n: int) -> None:
        self.measure = ClientProc("measure")
        self.clients = [ClientProc(f"client-{i}") for i in range(n)]
        await asyncio.gather(self.measure.start(), *(c.start() for c in self.clients))

    def prewarm(self, kind: str, key: str, seed: int) -> None:
        """Starts a shared server in the background (quick and smoke modes)."""
        if not self.cfg.fresh and key not in self.shared and key not in self.pending:
            self.pending[key] = asyncio.create_task(self._start(kind, key, seed))

    async def server(self, kind: str, key: str, seed: int = 0) -> Server:
        """A pixlive or baseline server on SQLite: shared by key in quick/smoke modes."""
        if not self.cfg.fresh and key in self.pending:
            await self.pending.pop(key)
        if not self.cfg.fresh and key in self.shared:
            server = self.shared[key]
            await self.ensure_ids(server, seed)
            return server
        return await self._start(kind, key, seed)

    async def _start(self, kind: str, key: str, seed: int) -> Server:
        self.counter += 1
        workdir = self.workdir / f"{key}-{self.counter}"
        if kind == "pixlive":
            server = await asyncio.to_thread(srv.start_pixlive, key, workdir, seed=seed)
        elif kind == "baseline":
            server = await asyncio.to_thread(srv.start_baseline, key, workdir, seed=seed)
        elif kind == "baseline-normal":
            server = await asyncio.to_thread(
                srv.start_baseline, key, workdir, seed=seed, synchronous="NORMAL"
            )
        else:
            raise ValueError(kind)
        self.started.append(server)
        if not self.cfg.fresh:
            self.shared[key] = server
        return server

    async def release(self, server: Server) -> None:
        if self.cfg.fresh:
            await asyncio.to_thread(server.stop)
            if server in self.started:
                self.started.remove(server)
            srv.cleanup_dir(server.workdir)

    async def ensure_ids(self, server: Server, n: int) -> None:
        if len(server.ids) >= n:
            return
        more = n - len(server.ids) + 100
        if server.kind == "pixlive":
            out = await asyncio.to_thread(
                srv._run, server.env, server.workdir, "-m", "bench.seed", str(more)
            )
            server.ids.extend(out.split())
        else:
            from bench.baseline.server import seed

            server.ids.extend(
                await asyncio.to_thread(seed, str(server.workdir / "baseline.db"), more)
            )

    async def take(self, server: Server, n: int) -> list[str]:
        await self.ensure_ids(server, n)
        return server.take_ids(n)

    async def close(self) -> None:
        for task in [*self.pending.values(), *([self.pending_pg] if self.pending_pg else [])]:
            try:
                await task
            except Exception:
                pass
        await asyncio.gather(
            *(c.stop() for c in [*self.clients, *([self.measure] if self.measure else [])]),
            return_exceptions=True,
        )
        await asyncio.gather(*(asyncio.to_thread(server.stop) for server in self.started))
        for name in self.pg_databases:
            assert self.pg_admin is not None
            await asyncio.to_thread(srv.drop_pg_database, self.pg_admin, name)


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


class IdlePool:
    """Idle subscribers of one transport on one server, held by the idle client processes."""

    def __init__(
        self, ctx: Context, server: Server, transport: str, procs: list[ClientProc]
    ) -> None:
        self.ctx, self.server, self.transport, self.procs = ctx, server, transport, procs
        self.held = 0
        self.seconds = 0.0

    async def grow_to(self, size: int, spread_seconds: float = 0.0) -> None:
        add = size - self.held
        if add <= 0:
            return
        spc = self.ctx.cfg.subs_per_charge
        shares = [s for s in split(add, len(self.procs)) if s]
        chunks = []
        for share in shares:
            chunks.append(await self.ctx.take(self.server, math.ceil(share / spc)))
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(
                proc.call(
                    "subscribe",
                    target=self.server.target,
                    transport=self.transport,
                    ids=ids,
                    count=share,
                    spread=spread_seconds,
                )
                for proc, share, ids in zip(self.procs, shares, chunks, strict=False)
            )
        )
        self.seconds += time.perf_counter() - started
        failed = sum(a["failed"] for a in answers)
        if failed:
            errors = [e for a in answers for e in a["errors"]]
            raise RuntimeError(f"{failed} {self.transport} subscribers failed: {errors[:3]}")
        self.held += sum(a["ready"] for a in answers)

    async def alive(self) -> int:
        answers = await asyncio.gather(*(p.call("stats") for p in self.procs))
        return sum(a["alive"] for a in answers)

    async def close(self) -> None:
        await asyncio.gather(*(p.call("close") for p in self.procs))
        self.held = 0


# Scenarios ----------------------------------------------------------------


LATENCY_KEYS = ["p50", "p90", "p99", "max", "mean"]


async def measure_latency(
    ctx: Context,
    server: Server,
    transport: str,
    samples: int,
    hook_server: Server | None = None,
) -> dict[str, Any]:
    assert ctx.measure is not None
    ids = await ctx.take(server, samples)
    answer = await ctx.measure.call(
        "latency",
        target=server.target,
        hook_target=(hook_server or server).target,
        transport=transport,
        ids=ids,
        secret=server.secret,
        valor=VALOR,
    )
    if answer["error_count"]:
        ctx.notes.append(f"{server.name}/{transport}: {answer['errors'][:2]}")
    stats = describe(answer["latency_ms"])
    stats["lost"] = answer["lost"]
    stats["errors"] = answer["error_count"]
    stats["webhook_p50"] = percentile(sorted(answer["webhook_ms"]), 50)
    return stats


Run = tuple[str, str, list[int]]  # server kind, transport, idle sizes


async def growth(ctx: Context, runs: list[Run]) -> None:
    """Latency at a growing number of idle subscribers, and the server's RSS per one.

    With several runs (pixlive's WebSocket and the baseline's socket.io), their
    repetitions alternate: the machine's speed drifts within minutes, and a ratio means
    something only between figures measured at the same speed.
    """
    cfg = ctx.cfg
    reps = cfg.latency_reps or cfg.reps
    outer, inner = (reps, 1) if cfg.fresh else (1, reps)
    per_size: list[dict[int, list[dict[str, Any]]]] = [{n: [] for n in r[2]} for r in runs]
    rss: list[dict[int, list[dict[str, Any]]]] = [{n: [] for n in r[2]} for r in runs]
    for _rep in range(outer):
        for i, run in enumerate(runs):
            await growth_rep(ctx, run, inner, per_size[i], rss[i])
    for i, run in enumerate(runs):
        record_growth(ctx, run, per_size[i], rss[i])


async def growth_rep(
    ctx: Context,
    run: Run,
    inner: int,
    per_size: dict[int, list[dict[str, Any]]],
    rss: dict[int, list[dict[str, Any]]],
) -> None:
    """One repetition of one run: a server (fresh in full mode), its idle pool grown size
    by size, the latency measured at each size."""
    cfg = ctx.cfg
    kind, transport, sizes = run
    name = "pixlive" if kind == "pixlive" else "baseline"
    key = f"{kind}-sqlite"
    need = math.ceil(max(sizes) / cfg.subs_per_charge) + cfg.samples * (len(sizes) * inner + 1)
    server = await ctx.server(kind, key, seed=need + 200)
    pool = IdlePool(ctx, server, transport, ctx.clients[: cfg.idle_procs])
    await measure_latency(ctx, server, transport, min(20, cfg.samples))  # warm-up
    await asyncio.sleep(0.5)
    # RSS only means something on a server that never held a pool before: memory
    # freed by an earlier pool is reused without showing in RSS
    fresh_memory = not server.meta.get("pooled")
    server.meta["pooled"] = True
    rss0 = server.rss_kib()
    for size in sizes:
        await pool.grow_to(size)
        await asyncio.sleep(1.0 if size >= 1000 else 0.2)
        rss_now = server.rss_kib()
        if fresh_memory:
            rss[size].append(
                {
                    "kib_per_subscriber": (rss_now - rss0) / size,
                    "rss_kib": rss_now,
                    "base": rss0,
                }
            )
        for _ in range(inner):
            stats = await measure_latency(ctx, server, transport, cfg.samples)
            stats["idle_alive"] = await pool.alive()
            stats["idle_dropped"] = pool.held - stats["idle_alive"]
            per_size[size].append(stats)
            log(
                f"{name} {transport} idle={size} rep={len(per_size[size])}: "
                f"p50={stats['p50']:.2f} p99={stats['p99']:.2f} ms lost={stats['lost']}"
            )
    log(f"{name} {transport}: idle pool connected in {pool.seconds:.1f}s")
    await pool.close()
    await ctx.release(server)


def record_growth(
    ctx: Context,
    run: Run,
    per_size: dict[int, list[dict[str, Any]]],
    rss: dict[int, list[dict[str, Any]]],
) -> None:
    kind, transport, sizes = run
    name = "pixlive" if kind == "pixlive" else "baseline"
    for size in sizes:
        reps = per_size[size]
        ctx.results["latency"].append(
            {
                "server": name,
                "transport": transport,
                "idle": size,
                "reps": reps,
                "summary": summarise(reps, LATENCY_KEYS),
                "lost": sum(r["lost"] for r in reps),
                "idle_dropped": sum(r["idle_dropped"] for r in reps),
                "samples": sum(r["n"] for r in reps),
            }
        )
        if not rss[size]:
            continue
        ctx.results["rss"].append(
            {
                "server": name,
                "transport": transport,
                "subscribers": size,
                "reps": rss[size],
                "summary": summarise(rss[size], ["kib_per_subscriber", "rss_kib"]),
            }
        )


async def throughput_run(
    ctx: Context, server: Server, label: dict[str, Any], per_rep: int, profile: bool = False
) -> None:
    """Signed webhooks at concurrency N from several client processes, each a distinct
    charge and endToEndId; `reps` runs on the same server."""
    cfg = ctx.cfg
    procs = ctx.clients[: cfg.throughput_procs]
    conc = [c for c in split(cfg.throughput_concurrency, len(procs)) if c]
    procs = procs[: len(conc)]

    async def one(n: int, duration: float) -> dict[str, Any]:
        ids = await ctx.take(server, n)
        chunks, at = [], 0
        for size in split(n, len(procs)):
            chunks.append(ids[at : at + size])
            at += size
        await asyncio.gather(
            *(
                p.call(
                    "prepare_throughput",
                    target=server.target,
                    ids=chunk,
                    concurrency=c,
                    secret=server.secret,
                    valor=VALOR,
                )
                for p, chunk, c in zip(procs, chunks, conc, strict=True)
            )
        )
        cpu0 = server.cpu_seconds()
        answers = await asyncio.gather(*(p.call("throughput", duration=duration) for p in procs))
        cpu1 = server.cpu_seconds()
        server.ids = [i for a in answers for i in a["unused"]] + server.ids
        start = min(a["start"] for a in answers)
        end = max(a["end"] for a in answers)
        latencies = [x for a in answers for x in a["latency_ms"]]
        statuses: dict[str, int] = {}
        outcomes: dict[str, int] = {}
        for a in answers:
            for k, v in a["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
            for k, v in a["outcomes"].items():
                outcomes[k] = outcomes.get(k, 0) + v
        done = len(latencies)
        stats = describe(latencies)
        stats.update(
            rate=done / (end - start) if end > start else float("nan"),
            seconds=end - start,
            statuses=statuses,
            outcomes=outcomes,
            not_paid=done - outcomes.get("paid", 0),
            cpu_ms_per_confirmation=(cpu1 - cpu0) * 1000 / done if done else float("nan"),
            # the load generator's own CPU, on the same cores as the server's
            client_cpu_ms_per_request=(
                sum(a["cpu_seconds"] for a in answers) * 1000 / done if done else float("nan")
            ),
        )
        return stats

    # warm-up, not counted; its rate sizes the runs (charges are seeded as needed)
    warm = await one(min(300, per_rep), 0)
    if cfg.throughput_seconds:
        per_rep = min(per_rep, int(warm["rate"] * cfg.throughput_seconds * 1.6) + 300)
    reps = []
    for rep in range(cfg.reps):
        stats = await one(per_rep, cfg.throughput_seconds)
        reps.append(stats)
        log(
            f"throughput {label['server']}/{label['database']} rep={rep + 1}: "
            f"{stats['rate']:.0f}/s p50={stats['p50']:.1f} p99={stats['p99']:.1f} ms "
            f"not paid={stats['not_paid']}"
        )
    entry = {
        **label,
        "concurrency": cfg.throughput_concurrency,
        "reps": reps,
        "summary": summarise(
            reps, ["rate", *LATENCY_KEYS, "cpu_ms_per_confirmation", "client_cpu_ms_per_request"]
        ),
        "not_paid": sum(r["not_paid"] for r in reps),
    }
    ctx.results["throughput"].append(entry)
    if profile:
        ctx.profile = await profile_run(ctx, server, one, per_rep, label)


async def profile_run(
    ctx: Context,
    server: Server,
    one: Callable[[int, float], Awaitable[dict[str, Any]]],
    per_rep: int,
    label: dict[str, Any],
) -> dict[str, Any] | None:
    """One more throughput run (not counted) with py-spy attached to the server."""
    from bench import profile

    if not profile.available():
        ctx.notes.append("py-spy is not installed: no profile")
        return None
    out = ctx.workdir / "profile.txt"
    seconds = max(2.0, ctx.cfg.throughput_seconds)
    recorder = await profile.start(server.pid, out, seconds + 1)
    await asyncio.sleep(0.5)
    stats = await one(per_rep, seconds)
    await profile.finish(recorder)
    summary = profile.summarise(out)
    summary.update(label=label, rate_while_profiled=stats["rate"])
    log(f"profiled {label}: {stats['rate']:.0f}/s under py-spy")
    return summary


async def throughput(ctx: Context) -> None:
    cfg = ctx.cfg
    need = min(cfg.throughput_per_rep, 2000) + 400
    server = await ctx.server("pixlive", "pixlive-sqlite", seed=need)
    await throughput_run(
        ctx,
        server,
        {"server": "pixlive", "database": "sqlite"},
        cfg.throughput_per_rep,
        profile=cfg.profile,
    )
    await ctx.release(server)
    if ctx.baseline_available:
        server = await ctx.server("baseline", "baseline-sqlite", seed=need)
        await throughput_run(
            ctx,
            server,
            {"server": "baseline", "database": "sqlite", "synchronous": "FULL"},
            cfg.throughput_per_rep,
        )
        await ctx.release(server)
        if cfg.baseline_normal:
            server = await ctx.server("baseline-normal", "baseline-normal", seed=need)
            await throughput_run(
                ctx,
                server,
                {"server": "baseline", "database": "sqlite", "synchronous": "NORMAL"},
                cfg.throughput_per_rep,
            )
            await ctx.release(server)
    if ctx.pg_admin:
        a, b = await pg_pair(ctx, with_second=False, seed=need)
        try:
            await throughput_run(
                ctx, a, {"server": "pixlive", "database": "postgresql"}, cfg.throughput_per_rep
            )
        finally:
            await release_pair(ctx, a, b)


async def pg_pair(ctx: Context, *, with_second: bool, seed: int) -> tuple[Server, Server | None]:
    """pixlive on a fresh PostgreSQL database (shared in quick/smoke modes), with Redis as
    the bus, and optionally a second `pixlive serve` on another port sharing both."""
    key = "pg-pair" if with_second else "pg-one"
    if ctx.pending_pg is not None and ctx.pending_pg is not asyncio.current_task():
        task, ctx.pending_pg = ctx.pending_pg, None
        await task
    if not ctx.cfg.fresh and "pg-pair" in ctx.shared:
        a = ctx.shared["pg-pair"]
        await ctx.ensure_ids(a, seed)
        return a, ctx.shared.get("pg-pair-b")
    assert ctx.pg_admin is not None
    name, url = await asyncio.to_thread(srv.create_pg_database, ctx.pg_admin)
    ctx.pg_databases.append(name)
    bus = ctx.redis_url or "memory://"
    ctx.counter += 1
    a = await asyncio.to_thread(
        srv.start_pixlive,
        "pixlive-pg-a",
        ctx.workdir / f"{key}-a-{ctx.counter}",
        url,
        bus_url=bus,
        seed=seed,
    )
    ctx.started.append(a)
    b = None
    if with_second or not ctx.cfg.fresh:
        b = await asyncio.to_thread(
            srv.start_pixlive,
            "pixlive-pg-b",
            ctx.workdir / f"{key}-b-{ctx.counter}",
            url,
            bus_url=bus,
            migrate=False,
        )
        ctx.started.append(b)
    if not ctx.cfg.fresh:
        ctx.shared["pg-pair"] = a
        if b is not None:
            ctx.shared["pg-pair-b"] = b
    a.meta["pg_database"] = name
    return a, b


async def release_pair(ctx: Context, a: Server, b: Server | None) -> None:
    if not ctx.cfg.fresh:
        return
    for s in (a, b):
        if s is not None:
            await asyncio.to_thread(s.stop)
            ctx.started.remove(s)
            srv.cleanup_dir(s.workdir)
    name = a.meta.get("pg_database")
    if name and ctx.pg_admin:
        await asyncio.to_thread(srv.drop_pg_database, ctx.pg_admin, name)
        ctx.pg_databases.remove(name)


async def two_workers(ctx: Context) -> None:
    """Webhook to one `pixlive serve`, page (WebSocket) on another; PostgreSQL + Redis."""
    cfg = ctx.cfg
    outer, inner = (cfg.reps, 1) if cfg.fresh else (1, cfg.reps)
    reps: list[dict[str, Any]] = []
    for _ in range(outer):
        need = math.ceil(cfg.pair_idle / cfg.subs_per_charge) + cfg.samples * (inner + 1) + 100
        a, b = await pg_pair(ctx, with_second=True, seed=need)
        assert b is not None
        # the seeded ids live in the shared database: B subscribes to charges A seeded
        b.ids = a.ids
        pool = IdlePool(ctx, b, "ws", ctx.clients[: cfg.idle_procs])
        try:
            await measure_latency(ctx, b, "ws", min(20, cfg.samples), hook_server=a)
            await pool.grow_to(cfg.pair_idle)
            await asyncio.sleep(0.5)
            for _ in range(inner):
                stats = await measure_latency(ctx, b, "ws", cfg.samples, hook_server=a)
                stats["idle_alive"] = await pool.alive()
                stats["idle_dropped"] = pool.held - stats["idle_alive"]
                reps.append(stats)
                log(
                    f"two workers rep={len(reps)}: p50={stats['p50']:.2f} "
                    f"p99={stats['p99']:.2f} ms lost={stats['lost']}"
                )
            await pool.close()
        finally:
            b.ids = []
            await release_pair(ctx, a, b)
    ctx.results["two_workers"].append(
        {
            "server": "pixlive",
            "database": "postgresql",
            "bus": "redis" if ctx.redis_url else "memory",
            "transport": "ws",
            "idle": cfg.pair_idle,
            "reps": reps,
            "summary": summarise(reps, LATENCY_KEYS),
            "lost": sum(r["lost"] for r in reps),
            "idle_dropped": sum(r["idle_dropped"] for r in reps),
            "samples": sum(r["n"] for r in reps),
        }
    )


TRANSPORTS = [
    ("pixlive", "ws"),
    ("pixlive", "sse"),
    ("pixlive", "longpoll"),
    ("pixlive", "polling"),
    ("baseline", "socketio"),
]


async def transports(ctx: Context) -> None:
    """Per transport: bytes on the subscriber's socket and server CPU per delivered
    notification, and per idle subscriber-minute. Each transport has its own server process
    (CPU time is per process) and its own client process (bytes are per process), and the
    idle windows of all transports run at the same time; in smoke mode the transports
    share one server and take turns."""
    cfg = ctx.cfg
    chosen = [t for t in TRANSPORTS if t[0] == "pixlive" or ctx.baseline_available]
    per: dict[str, list[dict[str, Any]]] = {t: [] for _, t in chosen}
    webhook_only: list[dict[str, Any]] = []
    while len(ctx.clients) < len(chosen):  # one client process per transport
        extra = ClientProc(f"client-{len(ctx.clients)}")
        await extra.start()
        ctx.clients.append(extra)
    procs = dict(zip([t for _, t in chosen], ctx.clients, strict=False))

    def key(kind: str, transport: str) -> str:
        if cfg.cost_shared or transport in ("ws", "socketio"):
            return f"{kind}-sqlite"
        return f"cost-{transport}"

    # rounds: transports whose servers differ run their idle windows at the same time
    rounds: list[list[tuple[str, str]]] = []
    for kind, t in chosen:
        for r in rounds:
            if all(key(k, x) != key(kind, t) for k, x in r):
                r.append((kind, t))
                break
        else:
            rounds.append([(kind, t)])
    idle_charges = math.ceil(cfg.cost_idle / cfg.subs_per_charge)
    need = idle_charges + cfg.cost_deliver * 2 + 100
    for _ in range(cfg.cost_reps or cfg.reps):
        started = await asyncio.gather(
            *(ctx.server(kind, key(kind, t), seed=need) for kind, t in chosen)
        )
        on = {t: s for (_, t), s in zip(chosen, started, strict=True)}
        idle: dict[str, dict[str, Any]] = {}
        for group in rounds:
            idle.update(await idle_round(ctx, [(t, on[t], procs[t]) for _, t in group]))
        log(
            "idle cost: "
            + ", ".join(f"{t} {v['bytes']:.0f} B {v['cpu_ms']:.2f} ms" for t, v in idle.items())
        )
        # delivery, one transport at a time
        for _, t in chosen:
            server, proc = on[t], procs[t]
            ids = await ctx.take(server, cfg.cost_deliver)
            ready = await proc.call(
                "subscribe", target=server.target, transport=t, ids=ids, count=len(ids)
            )
            if ready["failed"]:
                raise RuntimeError(f"{t}: {ready['errors']}")
            await asyncio.sleep(min(0.5, cfg.cost_window / 4))
            c0 = server.cpu_seconds()
            result = await proc.call(
                "deliver", target=server.target, secret=server.secret, valor=VALOR
            )
            c1 = server.cpu_seconds()
            await proc.call("close")
            delivered = max(1, result["delivered"])
            meter = result["meter"]
            entry = {
                **{f"idle_{k}": v for k, v in idle[t].items()},
                "bytes_in": meter["bytes_in"] / delivered,
                "bytes_out": meter["bytes_out"] / delivered,
                "bytes": (meter["bytes_in"] + meter["bytes_out"]) / delivered,
                "cpu_ms": (c1 - c0) * 1000 / delivered,
                "delivered": result["delivered"],
                "lost": result["lost"],
                "seconds": result["seconds"],
            }
            per[t].append(entry)
            log(
                f"deliver {t}: {entry['bytes']:.0f} B, {entry['cpu_ms']:.2f} ms CPU per "
                f"notification, lost={entry['lost']}"
            )
        # a webhook with nobody watching: what the per-notification CPU includes anyway
        server = on["ws"]
        ids = await ctx.take(server, cfg.cost_deliver)
        c0 = server.cpu_seconds()
        await procs["ws"].call(
            "deliver", target=server.target, secret=server.secret, valor=VALOR, ids=ids
        )
        c1 = server.cpu_seconds()
        webhook_only.append({"cpu_ms": (c1 - c0) * 1000 / max(1, len(ids))})
        for s in {id(s): s for s in started}.values():
            await ctx.release(s)
    keys = [
        "bytes_in",
        "bytes_out",
        "bytes",
        "cpu_ms",
        "idle_bytes_in",
        "idle_bytes_out",
        "idle_bytes",
        "idle_cpu_ms",
        "idle_cpu_ms_gross",
        "idle_server_base_cpu_ms_per_s",
    ]
    for kind, t in chosen:
        reps = per[t]
        ctx.results["transports"].append(
            {
                "server": "pixlive" if kind == "pixlive" else "baseline",
                "transport": t,
                "idle_subscribers": cfg.cost_idle,
                "idle_window_s": cfg.cost_window,
                "notifications": cfg.cost_deliver,
                "reps": reps,
                "summary": summarise(reps, keys),
                "lost": sum(r["lost"] for r in reps),
                "idle_dropped": sum(r["idle_dropped"] for r in reps),
            }
        )
    ctx.results["webhook_only"].append(
        {"server": "pixlive", "reps": webhook_only, "summary": summarise(webhook_only, ["cpu_ms"])}
    )


async def idle_round(
    ctx: Context, group: list[tuple[str, Server, ClientProc]]
) -> dict[str, dict[str, Any]]:
    """Idle subscribers of each transport in `group` (each on its own server), measured over
    the same window."""
    cfg = ctx.cfg
    servers = [s for _, s, _ in group]
    procs = [p for _, _, p in group]
    # the servers' own CPU with no subscriber (expiry sweeper, timers)
    base0 = [(s.cpu_seconds(), time.perf_counter()) for s in servers]
    await asyncio.sleep(cfg.cost_base_window)
    base_rate = [
        (s.cpu_seconds() - c) / (time.perf_counter() - t)
        for s, (c, t) in zip(servers, base0, strict=True)
    ]
    pools = [IdlePool(ctx, s, t, [p]) for t, s, p in group]
    await asyncio.gather(*(pool.grow_to(cfg.cost_idle, cfg.cost_spread) for pool in pools))
    await asyncio.sleep(min(1.0, cfg.cost_window / 4))
    await asyncio.gather(*(p.call("reset_meter") for p in procs))
    cpu0 = [s.cpu_seconds() for s in servers]
    t0 = time.perf_counter()
    await asyncio.sleep(cfg.cost_window)
    cpu1 = [s.cpu_seconds() for s in servers]
    t1 = time.perf_counter()
    stats = await asyncio.gather(*(p.call("stats") for p in procs))
    await asyncio.gather(*(pool.close() for pool in pools))
    minutes = cfg.cost_idle * (t1 - t0) / 60
    out = {}
    for (t, _, _), st, c0, c1, rate in zip(group, stats, cpu0, cpu1, base_rate, strict=True):
        meter = st["meter"]
        out[t] = {
            "bytes_in": meter["bytes_in"] / minutes,
            "bytes_out": meter["bytes_out"] / minutes,
            "bytes": (meter["bytes_in"] + meter["bytes_out"]) / minutes,
            "cpu_ms": max(0.0, (c1 - c0) - rate * (t1 - t0)) * 1000 / minutes,
            "cpu_ms_gross": (c1 - c0) * 1000 / minutes,
            "server_base_cpu_ms_per_s": rate * 1000,
            "alive": st["alive"],
            "dropped": cfg.cost_idle - st["alive"],
        }
    return out


# The run ----------------------------------------------------------------


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def run(
    cfg: Config,
    *,
    pg_admin: str | None,
    redis_url: str | None,
    workdir: Path | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    from bench import machine

    nofile = raise_nofile()
    need_fds = max([*cfg.ws_sizes, *cfg.sse_sizes, *cfg.lp_sizes]) + 1000
    if nofile < need_fds:
        raise RuntimeError(f"RLIMIT_NOFILE is {nofile}; {need_fds} are needed")
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="pixlive-bench-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    started = time.time()
    info = await asyncio.to_thread(machine.describe, root, pg_admin, redis_url)
    ctx = Context(cfg, root, pg_admin, redis_url)
    if not ctx.baseline_available:
        ctx.notes.append("python-socketio is not installed: the baseline server was skipped")
    if not pg_admin:
        ctx.notes.append("PostgreSQL was not reachable: its scenarios were skipped")
    if not redis_url:
        ctx.notes.append("Redis was not reachable: the two-worker scenario used PostgreSQL alone")
    log(f"mode={cfg.mode} workdir={root} nofile={nofile}")
    try:
        if not cfg.fresh:  # the shared servers start while the clients do
            ctx.prewarm("pixlive", "pixlive-sqlite", seed=cfg.prewarm_seed)
            if ctx.baseline_available:
                ctx.prewarm("baseline", "baseline-sqlite", seed=cfg.prewarm_seed)
            if pg_admin and {"throughput", "two_workers"} & set(cfg.scenarios):
                ctx.pending_pg = asyncio.create_task(
                    pg_pair(ctx, with_second=True, seed=cfg.prewarm_seed // 3)
                )
        await ctx.start_clients(max(cfg.idle_procs, cfg.throughput_procs))
        # nothing starts in the background while anything is measured
        await asyncio.gather(*ctx.pending.values(), *([ctx.pending_pg] if ctx.pending_pg else []))
        if "latency" in cfg.scenarios:
            ws: list[Run] = [("pixlive", "ws", cfg.ws_sizes)]
            if ctx.baseline_available:
                ws.append(("baseline", "socketio", cfg.ws_sizes))
            await growth(ctx, ws)
            await growth(ctx, [("pixlive", "sse", cfg.sse_sizes)])
            await growth(ctx, [("pixlive", "longpoll", cfg.lp_sizes)])
        if "throughput" in cfg.scenarios:
            await throughput(ctx)
        if "two_workers" in cfg.scenarios and pg_admin:
            await two_workers(ctx)
        if "transports" in cfg.scenarios:
            await transports(ctx)
    finally:
        await ctx.close()
        if own_dir and not keep:
            shutil.rmtree(root, ignore_errors=True)
    info["seconds"] = time.time() - started
    info["load_after"] = os.getloadavg()
    info["python_speed_ms_after"] = machine.python_speed_ms()
    return {
        "meta": info,
        "config": asdict(cfg),
        "results": ctx.results,
        "profile": ctx.profile,
        "notes": ctx.notes,
    }
