"""docs/benchmarks.md (from the template report.md.j2), docs/benchmarks.json (the summary of
every figure, not its samples) and docs/img/bench-*.png from a run's data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2
import orjson

NAMES = {
    "ws": "WebSocket",
    "sse": "SSE",
    "longpoll": "long poll",
    "polling": "polling every 2 s",
    "socketio": "socket.io (WebSocket)",
}


def total_lost(data: dict[str, Any]) -> int:
    return sum(
        int(e.get("lost", 0)) + int(e.get("idle_dropped", 0)) + int(e.get("not_paid", 0))
        for group in data["results"].values()
        for e in group
    )


# formatting ----------------------------------------------------------------


def num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.{digits}f}"


def med(e: dict[str, Any] | None, key: str) -> float:
    return float(e["summary"].get(key, {}).get("median", math.nan)) if e else math.nan


def cell(e: dict[str, Any], key: str, digits: int = 2) -> str:
    s = e["summary"].get(key)
    if not s:
        return "–"
    if s["min"] == s["max"]:
        return num(s["median"], digits)
    return f"{num(s['median'], digits)} ({num(s['min'], digits)}–{num(s['max'], digits)})"


def ratio(a: float, b: float) -> str:
    return "–" if not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}×"


def find(entries: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((e for e in entries if all(e.get(k) == v for k, v in match.items())), None)


def lost(e: dict[str, Any]) -> int:
    return int(e.get("lost", 0)) + int(e.get("idle_dropped", 0))


# the targets ----------------------------------------------------------------


def target(
    name: str,
    goal: str,
    value: float,
    unit: str,
    met: bool,
    base: float = math.nan,
    exact: bool = True,
) -> dict[str, Any]:
    return dict(name=name, target=goal, value=value, unit=unit, met=met, baseline=base, exact=exact)


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    r, out = data["results"], []
    ws = [e for e in r["latency"] if e["server"] == "pixlive" and e["transport"] == "ws"]
    top = find(ws, idle=1000) or max(ws, key=lambda e: e["idle"], default=None)
    if top:
        base = find(r["latency"], server="baseline", idle=top["idle"])
        for key, goal in (("p50", 1.5), ("p99", 4.0)):
            value = med(top, key)
            out.append(
                target(
                    f"webhook → notified {key}, {top['idle']:,} idle WS",
                    f"≤ {goal:g} ms",
                    value,
                    "ms",
                    value <= goal,
                    med(base, key),
                    top["idle"] == 1000,
                )
            )
        n = sum(lost(e) for e in ws)
        out.append(target("notifications lost (all WS runs)", "0", n, "", n == 0))
    for transport in ("ws", "sse"):
        rows = [e for e in r["rss"] if e["server"] == "pixlive" and e["transport"] == transport]
        if rows:
            e = max(rows, key=lambda e: e["subscribers"])
            base = find(r["rss"], server="baseline", subscribers=e["subscribers"])
            value = med(e, "kib_per_subscriber")
            name = f"RSS per idle {NAMES[transport]} subscriber at {e['subscribers']:,}"
            base_value = med(base, "kib_per_subscriber") if transport == "ws" else math.nan
            out.append(
                target(
                    name,
                    "≤ 20 KiB",
                    value,
                    "KiB",
                    value <= 20,
                    base_value,
                    e["subscribers"] >= 10000,
                )
            )
    baseline = find(r["throughput"], server="baseline", synchronous="FULL")
    for database, goal in (("sqlite", 5000), ("postgresql", 3000)):
        e = find(r["throughput"], server="pixlive", database=database)
        if e:
            value = med(e, "rate")
            name = f"durable confirmations/s, {database}, concurrency {e['concurrency']}"
            base = med(baseline, "rate") if database == "sqlite" else math.nan
            met = value >= goal and e["not_paid"] == 0
            out.append(
                target(name, f"≥ {goal:,}/s", value, "/s", met, base, e["concurrency"] == 50)
            )
    ours = sorted((e for e in r["pinned"] if e["server"] == "pixlive"), key=lambda e: e["idle"])
    if ours:
        e = ours[-1]
        base = find(r["pinned"], server="baseline", idle=e["idle"])
        value = med(e, "rate")
        name = f"one core: confirmations/s with {e['idle']:,} idle WS"
        out.append(
            target(
                name,
                "≥ the baseline",
                value,
                "/s",
                value >= med(base, "rate"),
                med(base, "rate"),
                e["idle"] == 1000,
            )
        )
        if len(ours) > 1:
            kept = med(e, "rate") / med(ours[0], "rate")
            name = f"one core: rate at {e['idle']:,} idle / at {ours[0]['idle']:,}"
            out.append(target(name, "≥ 0.90", kept, "×", kept >= 0.9))
    if r["two_workers"]:
        e = r["two_workers"][0]
        value = med(e, "p99")
        out.append(
            target(
                f"two workers (PostgreSQL + {e['bus']}), p99",
                "≤ 8 ms",
                value,
                "ms",
                value <= 8 and e["lost"] == 0,
                exact=e["bus"] == "redis" and e["idle"] == 1000,
            )
        )
    hooks = r.get("webhooks", [])
    if e := find(hooks, measure="commit_to_delivered"):
        value = med(e, "p99")
        name = f"merchant webhooks: commit → delivered p99 at {e['rate']} payments/s"
        out.append(target(name, "≤ 50 ms", value, "ms", value <= 50 and e["lost"] == 0))
    if e := find(hooks, measure="deliveries"):
        value = med(e, "rate")
        name = f"merchant webhooks: deliveries/s to {e['endpoints']} endpoints"
        out.append(target(name, "≥ 1,000/s", value, "/s", value >= 1000 and e["lost"] == 0))
    calm, failing = (
        find(hooks, failing_endpoints=0),
        find(hooks, measure="live", failing_endpoints=10),
    )
    if calm and failing:
        kept = med(failing, "p50") / med(calm, "p50")
        name = "live WS p50 with 10 failing endpoints / without"
        out.append(target(name, "≤ 1.10", kept, "×", kept <= 1.1))
    return out


def shown(value: float, unit: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if unit in ("/s", ""):
        return f"{value:,.0f}"
    return f"{value:.2f}{unit}" if unit == "×" else f"{value:.2f} {unit}"


# the markdown ----------------------------------------------------------------


def cells(e: dict[str, Any], keys: str, digits: int = 2) -> str:
    """`cell` of each space-separated key, as table cells."""
    return " | ".join(cell(e, k, digits) for k in keys.split())


def verdict(t: dict[str, Any]) -> str:
    met = "**met**" if t["met"] else "**missed**"
    return met + ("" if t["exact"] else " (not at the target's size)")


def markdown(data: dict[str, Any], images: list[str]) -> str:
    r, cfg = data["results"], data["config"]
    reps = {sc["section"]: sc.get("reps") for sc in cfg.get("scenarios", [])}
    pixlive_ws = [e for e in r["latency"] if (e["server"], e["transport"]) == ("pixlive", "ws")]
    ws, sio = find(r["transports"], transport="ws"), find(r["transports"], transport="socketio")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # markdown, not HTML
    )
    env.filters.update(n=lambda v: f"{v:,}", pct=lambda v: f"{v:.1%}")
    return env.get_template("report.md.j2").render(
        data=data,
        r=r,
        cfg=cfg,
        meta=data["meta"],
        images=images,
        latency_reps=(reps.get("latency") or {}).get(cfg["mode"]) or cfg["reps"],
        targets=targets(data),
        latency=sorted(r["latency"], key=lambda e: (e["transport"] != "ws", e["server"],
                                                    e["transport"], e["idle"])),
        ratios=[(e, b) for e in pixlive_ws
                if (b := find(r["latency"], server="baseline", idle=e["idle"]))],
        rss=sorted(r["rss"], key=lambda e: (e["server"], e["transport"], e["subscribers"])),
        pinned=sorted(r["pinned"], key=lambda e: (e["idle"], e["server"] != "pixlive")),
        transport_ratio=ws and sio and {k: ratio(med(ws, k), med(sio, k))
                                        for k in ("bytes", "cpu_ms", "idle_bytes",
                                                  "idle_cpu_ms")},
        NAMES=NAMES, cell=cell, cells=cells, med=med, ratio=ratio, find=find, lost=lost,
        shown=shown, verdict=verdict,
    )


# images ----------------------------------------------------------------


def plots(data: dict[str, Any], img: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made, r = [], data["results"]
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
                (e for e in r["latency"] if (e["server"], e["transport"]) == (server, transport)),
                key=lambda e: e["idle"],
            )
            for key, style, marker in (("p50", "-", "o"), ("p99", "--", "s")):
                ys = [med(e, key) for e in rows]
                err = [
                    [y - e["summary"][key]["min"] for y, e in zip(ys, rows, strict=True)],
                    [e["summary"][key]["max"] - y for y, e in zip(ys, rows, strict=True)],
                ]
                ax.errorbar(
                    [e["idle"] for e in rows],
                    ys,
                    yerr=err,
                    color=color,
                    linestyle=style,
                    marker=marker,
                    capsize=3,
                    label=f"{server} {NAMES[transport]} {key}",
                )
        for goal in (1.5, 4.0):
            ax.axhline(goal, color="grey", linewidth=0.8, linestyle=":")
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
        names = [NAMES[e["transport"]].replace(" (WebSocket)", "\n(baseline)") for e in rows]
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
                    ax.annotate(num(value), (i, value), ha="center", va="bottom", fontsize=7)
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
    json_path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    if json_only:
        return [json_path]
    images = plots(data, out / "img")
    md = out / "benchmarks.md"
    md.write_text(markdown(data, images))
    return [json_path, md, *(out / "img" / name for name in images)]
