"""Figures for the API Pix path (issue 12): create latency through the PSP emulator (over
mTLS, OAuth2 token cached) next to PIXLIVE_PSP=none, and the cost of a GET /pix sweep of
10,000 Pix (first sweep: all new in the ledger; second: all duplicates).

    .venv/bin/python -m bench.psp [--creates 200] [--pix 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from pixlive.testing.launcher import start_server
from tests.e2e.test_psp_apipix import start_pair


def _creates(server: object, count: int) -> list[float]:
    http = server.http  # type: ignore[attr-defined]
    auth = server.auth  # type: ignore[attr-defined]
    timings = []
    for _ in range(count):
        began = time.perf_counter()
        answer = http.post("/payments/pix", json={"value": "10.00"}, headers=auth)
        timings.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 201, answer.text
    return timings


def _summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"{name}: n={len(ms)} p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms"


async def _fill(public_url: str, ca: Path, count: int) -> None:
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    async with httpx.AsyncClient(verify=context, timeout=30) as client:
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem:
                answer = await client.post(
                    public_url + "/_emulator/pay", json={"valor": f"{1 + i % 500}.00"}
                )
                assert answer.status_code == 201, answer.text

        await asyncio.gather(*(one(i) for i in range(count)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=200)
    parser.add_argument("--pix", type=int, default=10_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pixlive-psp-bench-"))
    plain = start_server(tmp / "plain")
    try:
        _creates(plain, 20)
        print(_summary("create, PIXLIVE_PSP=none", _creates(plain, args.creates)))
    finally:
        plain.stop()
    pair = start_pair(tmp / "apipix", reconcile_seconds="0")
    try:
        _creates(pair.server, 20)
        print(
            _summary(
                "create, PIXLIVE_PSP=apipix (emulator, mTLS)", _creates(pair.server, args.creates)
            )
        )
        began = time.perf_counter()
        asyncio.run(_fill(pair.psp.public_url, pair.psp.dir / "ca.pem", args.pix))
        print(f"filled the emulator with {args.pix} Pix in {time.perf_counter() - began:.1f} s")
        since = "2000-01-01T00:00:00Z"
        for label in ("first sweep (all new)", "second sweep (all duplicates)"):
            done = pair.server.cli("psp", "reconcile", "--since", since)
            assert done.returncode == 0, done.stderr
            print(f"{label}: {done.stdout.strip()}")
    finally:
        pair.server.stop()
        pair.psp.stop()


if __name__ == "__main__":
    main()
