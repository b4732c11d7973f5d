"""What `make bench` measures, as data: the servers, the modes' sizes and the scenarios.

A new scenario is a `Scenario(...)` line in SCENARIOS naming one of the runners in
`bench.harness.RUNNERS` (growth, throughput, pair, transports) and the servers it needs; a
new server is a line in SERVERS. Any field given as `{"full": a, "quick": b, "smoke": c}`
takes the run's mode's value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ServerSpec:
    kind: str  # "pixlive" or "baseline"
    database: str = "sqlite"  # or "postgresql" (pixlive only; Redis as the bus when reachable)
    synchronous: str = "FULL"  # the baseline's SQLite setting
    pin: bool = False  # the server on core 0 (`taskset -c 0`), the clients on the others
    second: bool = False  # a second `pixlive serve` on the same PostgreSQL database and bus
    settings: dict[str, str] = field(default_factory=dict)  # more PIXLIVE_* settings
    api_key: bool = False  # the scenario calls the merchant API


SERVERS = {
    "pixlive": ServerSpec("pixlive"),
    "baseline": ServerSpec("baseline"),
    "baseline-normal": ServerSpec("baseline", synchronous="NORMAL"),
    "pixlive-pg": ServerSpec("pixlive", database="postgresql"),
    "pixlive-pg-pair": ServerSpec("pixlive", database="postgresql", second=True),
    "pixlive-pinned": ServerSpec("pixlive", pin=True),
    "baseline-pinned": ServerSpec("baseline", pin=True),
    # production takes only https endpoints: the sandbox, whose endpoints may be http
    "pixlive-hooks": ServerSpec("pixlive", settings={"PIXLIVE_ENV": "sandbox"}, api_key=True),
}


@dataclass(frozen=True)
class Scenario:
    section: str  # where its figures go in the results (and the report)
    runner: str
    servers: tuple[str, ...]
    transports: tuple[str, ...] = ("ws",)  # one per server for `growth`
    sizes: Any = (0,)  # idle subscribers: each is measured in turn
    reps: Any = None  # default: the mode's
    modes: tuple[str, ...] = ("full", "quick", "smoke")
    options: dict[str, Any] = field(default_factory=dict)


SCENARIOS = [
    # 1-2. webhook -> notified, and RSS per idle subscriber, as the idle pool grows; pixlive's
    # WebSocket and the baseline's socket.io alternate repetitions (the machine's speed
    # drifts: a ratio means something only between figures measured at the same speed)
    Scenario(
        "latency",
        "growth",
        ("pixlive", "baseline"),
        ("ws", "socketio"),
        sizes={"full": (1, 100, 1000, 10000), "quick": (1, 100, 1000), "smoke": (5,)},
        reps={"full": 5},
    ),
    Scenario(
        "latency",
        "growth",
        ("pixlive",),
        ("sse",),
        sizes={"full": (1000, 10000), "quick": (300,), "smoke": (5,)},
    ),
    Scenario(
        "latency",
        "growth",
        ("pixlive",),
        ("longpoll",),
        sizes={"full": (1000,), "quick": (300,), "smoke": (5,)},
    ),
    # 3. durable confirmations/s at concurrency 50
    Scenario("throughput", "throughput", ("pixlive",), options={"profile": True}),
    Scenario("throughput", "throughput", ("baseline",)),
    Scenario("throughput", "throughput", ("baseline-normal",), modes=("full",)),
    Scenario("throughput", "throughput", ("pixlive-pg",)),
    # 3b. one core: the server pinned, the load on the other core, with idle WebSocket
    # subscribers (socket.io for the baseline) held meanwhile; server CPU per confirmation
    Scenario(
        "pinned",
        "throughput",
        ("pixlive-pinned", "baseline-pinned"),
        ("ws", "socketio"),
        sizes={"full": (100, 1000), "quick": (100, 1000), "smoke": (5,)},
        options={"profile_each": True},  # where an idle subscriber's cost would show
    ),
    # 4. webhook on one worker, the page on another (PostgreSQL + Redis)
    Scenario(
        "two_workers",
        "pair",
        ("pixlive-pg-pair",),
        sizes={"full": (1000,), "quick": (100,), "smoke": (5,)},
    ),
    # 5. bytes and server CPU per notification and per idle minute, per transport
    Scenario(
        "transports",
        "transports",
        ("pixlive", "pixlive", "pixlive", "pixlive", "baseline"),
        ("ws", "sse", "longpoll", "polling", "socketio"),
    ),
    # 6. merchant webhooks (issue 13): the live path with 10 failing endpoints, commit ->
    # delivered at 100 payments/s to one endpoint, deliveries/s to 10 endpoints
    Scenario(
        "webhooks",
        "webhooks",
        ("pixlive-hooks",),
        options={
            "rate": 100,
            "seconds": {"full": 10, "quick": 3, "smoke": 0.2},
            "burst": {"full": 1000, "quick": 200, "smoke": 10},
            "endpoints": 10,
        },
    ),
]


MODES: dict[str, dict[str, Any]] = {
    # fresh: every repetition on fresh servers (and a fresh idle pool); otherwise servers
    # are shared between scenarios and repetitions, to fit the time
    "full": dict(
        reps=3,
        fresh=True,
        samples=200,
        subs_per_charge=10,
        idle_procs=4,
        profile=True,
        max_requests=15000,
        seconds=5,
        concurrency=50,
        load_procs=2,
        cost_idle=1000,
        cost_window=40,
        cost_spread=25,
        cost_base_window=5,
        cost_deliver=500,
        cost_reps=3,
    ),
    "quick": dict(
        reps=3,
        fresh=False,
        samples=40,
        subs_per_charge=10,
        idle_procs=2,
        profile=False,
        max_requests=4000,
        seconds=1,
        concurrency=50,
        load_procs=2,
        cost_idle=200,
        cost_window=20,
        cost_spread=20,
        cost_base_window=2,
        cost_deliver=100,
        cost_reps=1,
    ),
    "smoke": dict(
        reps=1,
        fresh=False,
        samples=20,
        subs_per_charge=5,
        idle_procs=1,
        profile=False,
        max_requests=20,
        seconds=0,
        concurrency=5,
        load_procs=1,
        cost_idle=5,
        cost_window=1,
        cost_spread=0,
        cost_base_window=0.25,
        cost_deliver=5,
        cost_reps=1,
    ),
}


# "check": full mode's code paths (fresh servers, every scenario) at smoke mode's sizes
MODES["check"] = {**MODES["smoke"], "fresh": True}


def pick(value: Any, mode: str) -> Any:
    """A per-mode value's value in this mode (None where the mode has none)."""
    return value.get("smoke" if mode == "check" else mode) if isinstance(value, dict) else value
