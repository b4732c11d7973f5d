"""`python -m bench [--mode full|quick|smoke]`: run the benchmark, write the report.

    make bench         # full: every scenario, 3-5 repetitions on fresh servers (< 25 min)
    make bench-quick   # smaller sizes, shared servers

PostgreSQL (for its scenarios) is found at PIXLIVE_BENCH_PG_URL, default
postgresql://postgres@127.0.0.1:5432/test (a fresh database is created per server and
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

from bench import harness, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--mode", choices=["full", "quick", "smoke", "check"], default="quick")
    parser.add_argument("--out", default="docs", help="where benchmarks.md/.json and img/ go")
    parser.add_argument("--json-only", action="store_true", help="no markdown, no images")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, help="py-spy")
    parser.add_argument(
        "--scenarios", help="comma-separated sections or runners (latency,pinned,transports,...)"
    )
    parser.add_argument("--workdir", help="where the temporary databases go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (server logs)")
    parser.add_argument("--from-json", help="no run: write the report again from a benchmarks.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.from_json:
        data = orjson.loads(Path(args.from_json).read_bytes())
    else:
        pg = os.environ.get("PIXLIVE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
        redis = os.environ.get("PIXLIVE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
        use_pg = not args.no_postgres and harness.reachable(pg, 5432)
        use_redis = not args.no_redis and harness.reachable(redis, 6379)
        data = asyncio.run(
            harness.run(
                args.mode,
                pg=pg if use_pg else None,
                redis=redis if use_redis else None,
                sections=args.scenarios.split(",") if args.scenarios else None,
                profiled=args.profile,
                workdir=Path(args.workdir) if args.workdir else None,
                keep=args.keep,
            )
        )
    for path in report.write(data, out, json_only=args.json_only):
        harness.log(f"wrote {path}")
    if lost := report.total_lost(data):
        harness.log(f"{lost} notifications lost or webhooks not confirmed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
