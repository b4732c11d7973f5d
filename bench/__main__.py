"""`python -m bench [--mode full|quick|smoke]`: run the benchmark, write the report.

    make bench         # full: every scenario, 3-5 repetitions on fresh servers (< 20 min)
    make bench-quick   # smaller sizes, shared servers (< 2 min)

PostgreSQL (for its scenarios) is found at PIXLIVE_BENCH_PG_URL, default
postgresql://postgres@127.0.0.1:5432/test (a fresh database is created per run and
dropped after); Redis at PIXLIVE_BENCH_REDIS_URL, default redis://127.0.0.1:6379/0.
Either one unreachable: its scenarios are skipped, and the report says so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import orjson

from bench import report, servers
from bench.run import Config, log, run

PG_URL = os.environ.get("PIXLIVE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PIXLIVE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--mode", choices=["full", "quick", "smoke"], default="quick")
    parser.add_argument("--out", default="docs", help="where benchmarks.md/.json and img/ go")
    parser.add_argument("--json-only", action="store_true", help="no markdown, no images")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--profile", action="store_true", help="py-spy the webhook path too")
    parser.add_argument(
        "--scenarios",
        help="comma-separated subset of latency,throughput,two_workers,transports",
    )
    parser.add_argument("--workdir", help="where the temporary databases go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (server logs)")
    parser.add_argument("--from-json", help="no run: write the report again from a benchmarks.json")
    args = parser.parse_args(argv)
    if args.from_json:
        data = orjson.loads(Path(args.from_json).read_bytes())
        data.pop("targets", None)
        for path in report.write(data, Path(args.out), json_only=args.json_only):
            log(f"wrote {path}")
        return 0

    cfg = Config.for_mode(args.mode)
    if args.no_profile:
        cfg.profile = False
    if args.profile:
        cfg.profile = True
    if args.scenarios:
        cfg.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    pg = None if args.no_postgres or not servers.pg_reachable(PG_URL) else PG_URL
    redis = None if args.no_redis or not servers.redis_reachable(REDIS_URL) else REDIS_URL
    if pg is None:
        log(f"PostgreSQL not used ({PG_URL})")
    if redis is None:
        log(f"Redis not used ({REDIS_URL})")
    data = asyncio.run(
        run(
            cfg,
            pg_admin=pg,
            redis_url=redis,
            workdir=Path(args.workdir) if args.workdir else None,
            keep=args.keep,
        )
    )
    out = Path(args.out)
    written = report.write(data, out, json_only=args.json_only)
    for path in written:
        log(f"wrote {path}")
    lost = report.total_lost(data)
    if lost:
        log(f"{lost} notifications lost or webhooks not confirmed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
