"""docs/benchmarks.md, docs/benchmarks.json and docs/img/bench-*.png from a run's data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson

TARGETS = {
    "ws_p50_ms": 1.5,
    "ws_p99_ms": 4.0,
    "rss_kib": 20.0,
    "sqlite_rate": 5000.0,
    "pg_rate": 3000.0,
    "pair_p99_ms": 8.0,
}


def total_lost(data: dict[str, Any]) -> int:
    results = data["results"]
    lost = 0
    for group in ("latency", "two_workers", "transports"):
        for entry in results.get(group, []):
            lost += int(entry.get("lost", 0)) + int(entry.get("idle_dropped", 0))
    for entry in results.get("throughput", []):
        lost += int(entry.get("not_paid", 0))
    return lost


# formatting ----------------------------------------------------------------


def num(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def lower_in(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], key: str) -> str:
    """`k of n`: the pairs (repetition i of each, measured one after the other) in which
    pixlive's figure was the lower."""
    pairs = list(zip(ours, theirs, strict=False))
    wins = sum(1 for a, b in pairs if a[key] < b[key])
    return f"{wins} of {len(pairs)}"


def cell(summary: dict[str, dict[str, float]], key: str, digits: int = 2) -> str:
    s = summary.get(key)
    if not s:
        return "–"
    if s["min"] == s["max"]:
        return num(s["median"], digits)
    return f"{num(s['median'], digits)} ({num(s['min'], digits)}–{num(s['max'], digits)})"


def med(entry: dict[str, Any] | None, key: str) -> float:
    if not entry:
        return float("nan")
    return float(entry["summary"].get(key, {}).get("median", float("nan")))


def ratio(a: float, b: float) -> str:
    if not b or math.isnan(a) or math.isnan(b):
        return "–"
    return f"{a / b:.2f}×"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def find(entries: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for entry in entries:
        if all(entry.get(k) == v for k, v in match.items()):
            return entry
    return None


# the report ----------------------------------------------------------------


TRANSPORT_NAMES = {
    "ws": "WebSocket",
    "sse": "SSE",
    "longpoll": "long poll",
    "polling": "polling every 2 s",
    "socketio": "socket.io (WebSocket)",
}


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    r = data["results"]
    out: list[dict[str, Any]] = []
    ws = [e for e in r["latency"] if e["server"] == "pixlive" and e["transport"] == "ws"]
    ws1000 = find(ws, idle=1000) or (max(ws, key=lambda e: e["idle"]) if ws else None)
    base1000 = find(r["latency"], server="baseline", idle=ws1000["idle"]) if ws1000 else None
    if ws1000:
        at = f"{ws1000['idle']:,} idle WS"
        out.append(
            dict(
                name=f"webhook → notified p50, {at}",
                target="≤ 1.5 ms",
                value=med(ws1000, "p50"),
                unit="ms",
                met=med(ws1000, "p50") <= TARGETS["ws_p50_ms"],
                baseline=med(base1000, "p50"),
                exact=ws1000["idle"] == 1000,
            )
        )
        out.append(
            dict(
                name=f"webhook → notified p99, {at}",
                target="≤ 4 ms",
                value=med(ws1000, "p99"),
                unit="ms",
                met=med(ws1000, "p99") <= TARGETS["ws_p99_ms"],
                baseline=med(base1000, "p99"),
                exact=ws1000["idle"] == 1000,
            )
        )
        lost = sum(e["lost"] + e["idle_dropped"] for e in ws)
        out.append(
            dict(
                name="notifications lost (all WS runs)",
                target="0",
                value=lost,
                unit="",
                met=lost == 0,
                baseline=float("nan"),
                exact=True,
            )
        )
    for transport in ("ws", "sse"):
        rows = [e for e in r["rss"] if e["server"] == "pixlive" and e["transport"] == transport]
        if not rows:
            continue
        top = max(rows, key=lambda e: e["subscribers"])
        base = find(r["rss"], server="baseline", subscribers=top["subscribers"])
        value = med(top, "kib_per_subscriber")
        out.append(
            dict(
                name=f"RSS per idle {TRANSPORT_NAMES[transport]} subscriber at "
                f"{top['subscribers']:,}",
                target="≤ 20 KiB",
                value=value,
                unit="KiB",
                met=value <= TARGETS["rss_kib"],
                baseline=med(base, "kib_per_subscriber") if transport == "ws" else float("nan"),
                exact=top["subscribers"] >= 10000,
            )
        )
    for database, goal in (("sqlite", "sqlite_rate"), ("postgresql", "pg_rate")):
        entry = find(r["throughput"], server="pixlive", database=database)
        if not entry:
            continue
        base = find(r["throughput"], server="baseline", database="sqlite", synchronous="FULL")
        value = med(entry, "rate")
        out.append(
            dict(
                name=f"durable confirmations/s, {database}, concurrency {entry['concurrency']}",
                target=f"≥ {TARGETS[goal]:,.0f}/s",
                value=value,
                unit="/s",
                met=value >= TARGETS[goal] and entry["not_paid"] == 0,
                # the baseline runs on SQLite only
                baseline=med(base, "rate") if database == "sqlite" else float("nan"),
                exact=entry["concurrency"] == 50,
            )
        )
    pair = r["two_workers"][0] if r["two_workers"] else None
    if pair:
        out.append(
            dict(
                name=f"two workers (PostgreSQL + {pair['bus']}), p99",
                target="≤ 8 ms",
                value=med(pair, "p99"),
                unit="ms",
                met=med(pair, "p99") <= TARGETS["pair_p99_ms"] and pair["lost"] == 0,
                baseline=float("nan"),
                exact=pair["bus"] == "redis",
            )
        )
    return out


def markdown(data: dict[str, Any], images: list[str]) -> str:
    meta, cfg, r = data["meta"], data["config"], data["results"]
    out: list[str] = []
    add = out.append
    latency_reps = cfg.get("latency_reps") or cfg["reps"]
    growth_reps = f" ({latency_reps} in sections 1 and 2)" if latency_reps != cfg["reps"] else ""
    add("# Benchmarks\n")
    add(
        f"Generated by the harness in `bench/` ({cfg['mode']} mode), {meta['date']}; "
        "rerun it rather than edit this file. Figures are the **median of "
        f"{cfg['reps']} repetitions, with (min–max)**{growth_reps}; latencies in "
        "milliseconds.\n"
    )
    if cfg["mode"] != "full":
        add(
            f"> **{cfg['mode']} mode**: smaller sizes than the targets name, servers shared "
            "between scenarios and repetitions. Only `make bench` (full mode) measures what "
            "the targets say.\n"
        )
    add("## The machine and the run\n")
    v = meta["versions"]
    add(
        table(
            ["", ""],
            [
                ["command", f"`{meta['command']}`"],
                ["date", meta["date"]],
                ["CPU", f"{meta['cpu']}, {meta['cores']} cores, {meta['memory_gib']} GiB"],
                ["kernel", meta["kernel"]],
                ["Python", meta["python"]],
                ["SQLite", meta["sqlite"]],
                ["PostgreSQL", meta.get("postgresql") or "not used"],
                ["Redis", meta.get("redis") or "not used"],
                [
                    "disk",
                    f"write 4 KiB + fsync: {meta['fsync_ms']:.2f} ms (median) "
                    f"in the databases' directory",
                ],
                [
                    "load average",
                    f"{_load(meta['load_before'])} before, {_load(meta.get('load_after'))} after",
                ],
                [
                    "Python speed",
                    _speed(meta.get("python_speed_ms_before"), meta.get("python_speed_ms_after")),
                ],
                ["duration", f"{meta.get('seconds', 0) / 60:.1f} min"],
                ["libraries", ", ".join(f"{k} {x}" for k, x in v.items() if x != "not installed")],
            ],
        )
    )
    add("")
    add(
        f"The machine has {meta['cores']} cores, and **the client processes share them with "
        "the servers**: every figure includes the client's own CPU contention. Other work on "
        "the machine at the time (the load average above; other engineers' test suites may "
        "have been running) adds noise, mostly to the tails.\n"
    )

    add("## Targets\n")
    add(
        "Where a target is missed, [performance-log.md](performance-log.md#where-the-targets-"
        "stand) shows the profile that says why, and what it would take.\n"
    )
    rows = []
    for t in targets(data):
        value = t["value"]
        shown = f"{value:,.0f}" if t["unit"] in ("/s", "") else f"{value:.2f} {t['unit']}"
        base = t["baseline"]
        base_shown = (
            "–"
            if isinstance(base, float) and math.isnan(base)
            else (f"{base:,.0f}" if t["unit"] == "/s" else f"{base:.2f} {t['unit']}")
        )
        verdict = "**met**" if t["met"] else "**missed**"
        if not t["exact"]:
            verdict += " (not at the target's size)"
        rows.append(
            [
                t["name"],
                t["target"],
                shown,
                base_shown,
                ratio(value, base) if base_shown != "–" else "–",
                verdict,
            ]
        )
    add(
        table(
            ["target (DESIGN.md)", "goal", "pixlive", "baseline", "pixlive/baseline", "verdict"],
            rows,
        )
    )
    add("")
    add(
        "The baseline is `bench/baseline/`: python-socketio on uvicorn, Starlette routes, "
        "aiosqlite, the same flow (charge row, signed webhook → ledger row + UPDATE committed "
        "→ emit to the charge's room), measured in the same run by the same client code. "
        "Both fsync every commit (`synchronous=FULL`); the throughput table also shows the "
        "baseline with `synchronous=NORMAL` (no fsync per commit: not durable on power loss).\n"
    )

    add("## 1. Webhook sent → subscriber notified\n")
    add(
        "One client process holds the measured subscriber and sends the signed webhook over "
        "a keep-alive connection; the time is `time.perf_counter_ns()` from just before the "
        "request is written to the moment the `payment.paid` event is parsed. Per sample: "
        "a fresh charge, subscribe, wait for the snapshot, pay, wait. The idle subscribers "
        f"are held by {cfg['idle_procs']} other client process(es), {cfg['subs_per_charge']} "
        "per charge, on charges that stay ACTIVE. A notification not received within 5 s "
        f"is lost. {cfg.get('latency_reps') or cfg['reps']} repetitions of "
        f"{cfg['samples']} samples. The repetitions of pixlive's "
        "WebSocket and of the baseline alternate, so that each pair is measured at the same "
        "machine speed.\n"
    )
    rows = []
    for e in sorted(
        r["latency"], key=lambda e: (e["transport"] != "ws", e["server"], e["transport"], e["idle"])
    ):
        rows.append(
            [
                e["server"],
                TRANSPORT_NAMES[e["transport"]],
                f"{e['idle']:,}",
                cell(e["summary"], "p50"),
                cell(e["summary"], "p90"),
                cell(e["summary"], "p99"),
                cell(e["summary"], "max"),
                str(e["samples"]),
                str(e["lost"] + e["idle_dropped"]),
            ]
        )
    add(
        table(
            [
                "server",
                "transport",
                "idle subscribers",
                "p50",
                "p90",
                "p99",
                "max",
                "samples",
                "lost",
            ],
            rows,
        )
    )
    add("")
    rows = []
    for e in r["latency"]:
        if e["server"] != "pixlive" or e["transport"] != "ws":
            continue
        b = find(r["latency"], server="baseline", idle=e["idle"])
        if b:
            rows.append(
                [f"{e['idle']:,}"]
                + [ratio(med(e, k), med(b, k)) for k in ("p50", "p90", "p99", "max")]
                + [lower_in(e["reps"], b["reps"], k) for k in ("p50", "p99")]
            )
    if rows:
        add(
            "pixlive WebSocket / baseline socket.io (below 1 is better), and in how many of "
            "the alternating pairs of repetitions pixlive's figure was the lower:\n"
        )
        add(
            table(
                ["idle subscribers", "p50", "p90", "p99", "max", "p50 lower in", "p99 lower in"],
                rows,
            )
        )
        add("")
    if "bench-latency.png" in images:
        add("![latency vs idle subscribers](img/bench-latency.png)\n")

    add("## 2. Idle subscribers: server memory\n")
    add(
        "RSS of the server process (`VmRSS` in `/proc/PID/status`) with N idle subscribers "
        "connected, minus its RSS before the first one (after a warm-up), divided by N.\n"
    )
    rows = []
    for e in sorted(r["rss"], key=lambda e: (e["server"], e["transport"], e["subscribers"])):
        rows.append(
            [
                e["server"],
                TRANSPORT_NAMES[e["transport"]],
                f"{e['subscribers']:,}",
                cell(e["summary"], "kib_per_subscriber", 1),
                cell(e["summary"], "rss_kib", 0),
            ]
        )
    add(
        table(
            ["server", "transport", "subscribers", "KiB per subscriber", "server RSS (KiB)"], rows
        )
    )
    add("")

    add("## 3. Webhook throughput\n")
    add(
        f"Signed webhooks at concurrency {cfg['throughput_concurrency']} "
        f"({cfg['throughput_procs']} client processes with raw HTTP/1.1 keep-alive "
        "connections), each a distinct charge and endToEndId, each answered 200 only once "
        f"on disk; up to {cfg['throughput_per_rep']:,} per repetition or "
        f"{cfg['throughput_seconds']} s. Latency is per request; CPU is the server's "
        "(utime+stime) per confirmation; client CPU is the load generator's own per request "
        "(its processes share the machine's cores with the server).\n"
    )
    rows = []
    for e in r["throughput"]:
        name = e["server"] + (f" (synchronous={e['synchronous']})" if e.get("synchronous") else "")
        rows.append(
            [
                name,
                e["database"],
                cell(e["summary"], "rate", 0),
                cell(e["summary"], "p50"),
                cell(e["summary"], "p90"),
                cell(e["summary"], "p99"),
                cell(e["summary"], "max"),
                cell(e["summary"], "cpu_ms_per_confirmation", 3),
                cell(e["summary"], "client_cpu_ms_per_request", 3)
                if "client_cpu_ms_per_request" in e["summary"]
                else "–",
                str(e["not_paid"]),
            ]
        )
    add(
        table(
            [
                "server",
                "database",
                "confirmations/s",
                "p50",
                "p90",
                "p99",
                "max",
                "CPU ms/conf.",
                "client CPU ms/req.",
                "not paid",
            ],
            rows,
        )
    )
    add("")

    add("## 4. Two workers: PostgreSQL and Redis\n")
    add(
        "Two `pixlive serve` processes on two ports sharing one fresh PostgreSQL database and "
        "Redis: the webhook goes to the first, the measured subscriber (and the idle ones) "
        "are on the second, so every notification crosses the Redis bus.\n"
    )
    rows = []
    for e in r["two_workers"]:
        rows.append(
            [
                f"PostgreSQL + {e['bus']}",
                f"{e['idle']:,}",
                cell(e["summary"], "p50"),
                cell(e["summary"], "p90"),
                cell(e["summary"], "p99"),
                cell(e["summary"], "max"),
                str(e["samples"]),
                str(e["lost"] + e["idle_dropped"]),
            ]
        )
    add(
        table(["setup", "idle subscribers", "p50", "p90", "p99", "max", "samples", "lost"], rows)
        if rows
        else "Not run (PostgreSQL not reachable)."
    )
    add("")

    add("## 5. Per transport: bytes and server CPU\n")
    add(
        "Bytes are counted at the client's sockets: every byte the subscriber's client "
        "process wrote to or read from its TCP connection (HTTP request and response headers, "
        "chunk framing, WebSocket frames, pings and pongs, close handshakes; TCP/IP headers "
        "not included, about 52 bytes per segment on loopback). CPU is the server process's "
        "utime+stime from `/proc/PID/stat` (10 ms ticks). Each transport has its own server "
        f"process and client process. {cfg.get('cost_reps') or cfg['reps']} repetition(s).\n\n"
        f"- **per delivered notification**: {cfg['cost_deliver']} subscribers, one per "
        "charge, connected and waiting; then every charge is paid (signed webhooks at "
        "concurrency 10 on unmetered connections) until every subscriber has its "
        "notification and its stream has ended. Bytes: the subscriber's connection from "
        "waiting to the end of its stream (for long poll, the pending request that carries "
        "the event too). CPU: everything the server spent meanwhile, **the webhook's own "
        "processing included** (the row *webhook only* gives that part alone).\n"
        f"- **per idle subscriber-minute**: {cfg['cost_idle']:,} idle subscribers, connected "
        f"over {cfg['cost_spread']:g} s (so that keepalive and poll cycles are spread), "
        f"measured over {cfg['cost_window']:g} s; server CPU net of the server's own rate "
        "with no subscriber (expiry sweeper and timers, measured just before).\n"
    )
    rows = []
    for e in r["transports"]:
        s = e["summary"]
        rows.append(
            [
                e["server"],
                TRANSPORT_NAMES[e["transport"]],
                cell(s, "bytes", 0),
                cell(s, "bytes_in", 0),
                cell(s, "bytes_out", 0),
                cell(s, "cpu_ms", 3),
                cell(s, "idle_bytes", 0),
                cell(s, "idle_cpu_ms", 3),
                str(e["lost"] + e["idle_dropped"]),
            ]
        )
    for e in r["webhook_only"]:
        rows.append(
            [
                "pixlive",
                "webhook only (no subscriber)",
                "–",
                "–",
                "–",
                cell(e["summary"], "cpu_ms", 3),
                "–",
                "–",
                "–",
            ]
        )
    add(
        table(
            [
                "server",
                "transport",
                "bytes/notification",
                "in",
                "out",
                "CPU ms/notification",
                "bytes/idle min",
                "CPU ms/idle min",
                "lost",
            ],
            rows,
        )
    )
    add("")
    ws = find(r["transports"], transport="ws")
    sio = find(r["transports"], transport="socketio")
    if ws and sio:
        add(
            "pixlive WebSocket / baseline socket.io: "
            f"bytes per notification {ratio(med(ws, 'bytes'), med(sio, 'bytes'))}, "
            f"CPU per notification {ratio(med(ws, 'cpu_ms'), med(sio, 'cpu_ms'))}, "
            f"bytes per idle minute {ratio(med(ws, 'idle_bytes'), med(sio, 'idle_bytes'))}, "
            f"CPU per idle minute {ratio(med(ws, 'idle_cpu_ms'), med(sio, 'idle_cpu_ms'))}.\n"
        )
    if "bench-transport.png" in images:
        add("![bytes and CPU by transport](img/bench-transport.png)\n")

    prof = data.get("profile")
    if prof and prof.get("self"):
        add("## Where the webhook's time goes (py-spy)\n")
        add(
            f"py-spy on the server during one more throughput run (not counted above; "
            f"{prof['label']['database']}, {num(prof.get('rate_while_profiled', 0), 0)}/s "
            f"while sampled). The event-loop thread was busy in {prof['busy_share']:.0%} of "
            f"its {prof['samples']} samples; shares below are of the busy samples.\n"
        )
        add(table(["self time", "function"], [[f"{s:.1%}", f"`{f}`"] for f, s in prof["self"]]))
        add("")
        add(
            table(["inclusive", "function"], [[f"{s:.1%}", f"`{f}`"] for f, s in prof["inclusive"]])
        )
        add("")
        if prof.get("threads"):
            add(
                "Samples per thread: "
                + ", ".join(f"{t}: {n}" for t, n in prof["threads"].items())
                + "\n"
            )
    if data.get("notes"):
        add("## Notes\n")
        for note in data["notes"]:
            add(f"- {note}")
        add("")
    add(
        "What each change to a hot path bought, before and after: "
        "[performance-log.md](performance-log.md).\n"
    )
    add("## How to run\n")
    add(
        "```\nmake bench         # full: the sizes the targets name, 3-5 fresh repetitions\n"
        "make bench-quick   # smaller, shared servers: a check in under 2 minutes\n"
        ".venv/bin/python -m bench --help\n```\n\n"
        "The harness starts its own servers (`pixlive migrate` and `pixlive serve` on a temp "
        "SQLite database; a fresh PostgreSQL database at 127.0.0.1:5432 and Redis at "
        "127.0.0.1:6379 when reachable) and drives them from separate client processes "
        "(`bench/client.py`, uvloop: `websockets` for WebSocket and socket.io, raw asyncio "
        "HTTP/1.1 for SSE, long poll, polling and webhooks). The charges are made beforehand "
        "by `bench/seed.py` through pixlive's own `create_charge` use case. The JSON next to "
        "this file holds every repetition's figures.\n"
    )
    return "\n".join(out)


def _speed(before: float | None, after: float | None) -> str:
    if before is None:
        return "not measured (a run before this figure existed)"
    shown = f"{before:.0f} ms before" + (f", {after:.0f} ms after" if after else "")
    return (
        f"{shown}: a pure-Python loop of 10⁶ additions (median of 5; lower is faster). "
        "On this machine it has read from 38 to 107 ms within one day: compare runs by it"
    )


def _load(value: Any) -> str:
    if not value:
        return "?"
    return " / ".join(f"{x:.2f}" for x in value)


# images ----------------------------------------------------------------


def plots(data: dict[str, Any], img: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    r = data["results"]
    img.mkdir(parents=True, exist_ok=True)
    if r["latency"]:
        fig, ax = plt.subplots(figsize=(8, 5))
        styles = {
            ("pixlive", "ws"): "C0",
            ("baseline", "socketio"): "C3",
            ("pixlive", "sse"): "C1",
            ("pixlive", "longpoll"): "C2",
        }
        for (server, transport), color in styles.items():
            rows = sorted(
                [e for e in r["latency"] if e["server"] == server and e["transport"] == transport],
                key=lambda e: e["idle"],
            )
            if not rows:
                continue
            xs = [e["idle"] for e in rows]
            label = f"{server} {TRANSPORT_NAMES[transport]}"
            for key, style, marker in (("p50", "-", "o"), ("p99", "--", "s")):
                ys = [med(e, key) for e in rows]
                lo = [med(e, key) - e["summary"][key]["min"] for e in rows]
                hi = [e["summary"][key]["max"] - med(e, key) for e in rows]
                ax.errorbar(
                    xs,
                    ys,
                    yerr=[lo, hi],
                    color=color,
                    linestyle=style,
                    marker=marker,
                    capsize=3,
                    label=f"{label} {key}",
                )
        ax.axhline(1.5, color="grey", linewidth=0.8, linestyle=":")
        ax.axhline(4.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.set_xlim(0.7, 15000)
        ax.set_xlabel("idle subscribers on the server")
        ax.set_ylabel("webhook sent → subscriber notified (ms)")
        ax.set_title("Notification latency (median of repetitions, bars: min–max)")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(img / "bench-latency.png", dpi=110)
        plt.close(fig)
        made.append("bench-latency.png")
    if r["transports"]:
        rows = r["transports"]
        names = [
            TRANSPORT_NAMES[e["transport"]].replace(" (WebSocket)", "\n(baseline)") for e in rows
        ]
        colors = ["C3" if e["server"] == "baseline" else "C0" for e in rows]
        fig, axes = plt.subplots(2, 2, figsize=(11, 7))
        panels = [
            ("bytes", "bytes per delivered notification"),
            ("cpu_ms", "server CPU ms per delivered notification"),
            ("idle_bytes", "bytes per idle subscriber-minute"),
            ("idle_cpu_ms", "server CPU ms per idle subscriber-minute"),
        ]
        for ax, (key, title) in zip(axes.flat, panels, strict=True):
            values = [med(e, key) for e in rows]
            ax.bar(range(len(rows)), values, color=colors)
            positive = [v for v in values if v == v and v > 0]
            if positive and max(positive) / min(positive) > 30:
                ax.set_yscale("log")
                title += " (log scale)"
            ax.set_xticks(range(len(rows)))
            ax.set_xticklabels(names, fontsize=8)
            ax.set_title(title, fontsize=10)
            ax.grid(True, axis="y", alpha=0.3)
            for i, value in enumerate(values):
                if value == value:
                    ax.annotate(num(value, 2), (i, value), ha="center", va="bottom", fontsize=7)
        fig.suptitle("Cost per transport (pixlive blue, baseline red)")
        fig.tight_layout()
        fig.savefig(img / "bench-transport.png", dpi=110)
        plt.close(fig)
        made.append("bench-transport.png")
    return made


def write(data: dict[str, Any], out: Path, *, json_only: bool = False) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    data = {**data, "targets": targets(data)}
    json_path = out / "benchmarks.json"
    json_path.write_bytes(
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    written = [json_path]
    if json_only:
        return written
    images = plots(data, out / "img")
    md = out / "benchmarks.md"
    md.write_text(markdown(data, images))
    written.append(md)
    written += [out / "img" / name for name in images]
    return written
