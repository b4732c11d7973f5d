"""Load and churn (issue 5): many live subscribers while webhooks arrive at a steady rate,
then many connect/disconnect cycles; counts lost notifications and 5xx, and watches the
server's RSS. The load runs here, in a process of its own; the server is a real
`pixlive serve` started for the run.

    python -m soak.run                 # the full soak: 5,000 subscribers, 200 webhooks/s, 5 min
    python -m soak.run --quick         # a short version (the one `make test` runs)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

from pixlive.services.psp import new_end_to_end_id, signed_headers, webhook_body
from pixlive.testing.launcher import Server, start_server


@dataclass
class Report:
    subscribers: int
    rate: float
    duration: float
    cycles: int
    webhooks_sent: int = 0
    webhook_5xx: int = 0
    webhook_errors: int = 0
    notifications_expected: int = 0
    notifications_received: int = 0
    notifications_lost: int = 0
    notifications_repeated: int = 0
    rss_kib_samples: list[tuple[float, int]] = field(default_factory=list)
    rss_after_warmup_kib: int = 0
    rss_end_of_load_kib: int = 0
    rss_before_churn_kib: int = 0
    rss_after_churn_kib: int = 0
    churn_failures: int = 0
    seconds: float = 0.0


def raise_open_files() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def ws_url(server: Server, payment_id: str) -> str:
    return server.url.replace("http://", "ws://") + f"/payments/pix/{payment_id}/ws"


async def create_charges(server: Server, count: int) -> list[str]:
    ids: list[str] = []
    limit = asyncio.Semaphore(20)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

        async def one() -> None:
            async with limit:
                answer = await client.post(
                    "/payments/pix",
                    json={"value": "10.00", "expires_in": 86400},
                    headers=server.auth,
                )
                answer.raise_for_status()
                ids.append(answer.json()["id"])

        await asyncio.gather(*(one() for _ in range(count)))
    return ids


async def subscribe(
    server: Server, ids: list[str], received: dict[str, list[int]]
) -> list[tuple[ClientConnection, asyncio.Task[None]]]:
    limit = asyncio.Semaphore(100)
    out: list[tuple[ClientConnection, asyncio.Task[None]]] = []

    async def reader(payment_id: str, conn: ClientConnection) -> None:
        async for message in conn:
            event = json.loads(message)
            if event.get("type") != "snapshot":
                received[payment_id].append(event["id"])

    async def one(payment_id: str) -> None:
        async with limit:
            conn = await connect(ws_url(server, payment_id), open_timeout=30, max_queue=64)
            await asyncio.wait_for(conn.recv(), 30)  # the snapshot
            out.append((conn, asyncio.create_task(reader(payment_id, conn))))

    await asyncio.gather(*(one(payment_id) for payment_id in ids))
    return out


async def send_webhooks(
    server: Server,
    ids: list[str],
    rate: float,
    duration: float,
    report: Report,
    expected: dict[str, int],
    server_rss: Callable[[], int],
) -> None:
    """Money that does not settle the charge (a `payment.mismatch`, not final), so every
    subscriber keeps its stream and receives event after event."""
    limit = asyncio.Semaphore(50)
    targets = itertools.cycle(ids)
    began = time.monotonic()
    next_sample = began
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        tasks = set()

        async def one(payment_id: str) -> None:
            body = webhook_body(payment_id, "0.01", new_end_to_end_id())
            async with limit:
                try:
                    answer = await client.post(
                        "/payments/pix/confirmation",
                        content=body,
                        headers=signed_headers(server.secret, body),
                    )
                except httpx.HTTPError:
                    report.webhook_errors += 1
                    return
            if answer.status_code >= 500:
                report.webhook_5xx += 1
            elif answer.status_code == 200 and answer.json()["results"][0]["outcome"] == "mismatch":
                expected[payment_id] += 1

        sent = 0
        while (elapsed := time.monotonic() - began) < duration:
            due = int(elapsed * rate) + 1
            while sent < due:
                task = asyncio.create_task(one(next(targets)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            if time.monotonic() >= next_sample:
                report.rss_kib_samples.append((round(elapsed, 1), server_rss()))
                next_sample += max(1.0, duration / 30)
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
        report.webhooks_sent = sent


async def churn(server: Server, ids: list[str], cycles: int, report: Report) -> None:
    limit = asyncio.Semaphore(50)

    async def one(n: int) -> None:
        async with limit:
            try:
                async with connect(ws_url(server, ids[n % len(ids)]), open_timeout=30) as conn:
                    await asyncio.wait_for(conn.recv(), 30)
            except Exception:
                report.churn_failures += 1

    for start in range(0, cycles, 1000):
        await asyncio.gather(*(one(n) for n in range(start, min(cycles, start + 1000))))


async def run(subscribers: int, rate: float, duration: float, cycles: int, workdir: Path) -> Report:
    raise_open_files()
    report = Report(subscribers, rate, duration, cycles)
    began = time.monotonic()
    server = await asyncio.to_thread(
        start_server,
        workdir,
        PIXLIVE_CREATE_RATE_PER_SECOND="1000000",
        PIXLIVE_CREATE_BURST="1000000",
        PIXLIVE_MAX_STREAMS_PER_CLIENT="1000000",
        PIXLIVE_MAX_STREAMS_TOTAL="1000000",
        PIXLIVE_LOG_LEVEL="warning",
    )
    try:
        ids = await create_charges(server, subscribers)
        received: dict[str, list[int]] = defaultdict(list)
        expected: dict[str, int] = defaultdict(int)
        conns = await subscribe(server, ids, received)
        await asyncio.sleep(1)
        report.rss_after_warmup_kib = server.rss_kib()
        await send_webhooks(server, ids, rate, duration, report, expected, server.rss_kib)
        report.rss_end_of_load_kib = server.rss_kib()
        # Give the last notifications a moment to arrive.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if all(len(received[i]) >= expected[i] for i in ids):
                break
            await asyncio.sleep(0.2)
        report.notifications_expected = sum(expected.values())
        report.notifications_received = sum(len(set(v)) for v in received.values())
        report.notifications_repeated = sum(len(v) - len(set(v)) for v in received.values())
        report.notifications_lost = sum(max(0, expected[i] - len(set(received[i]))) for i in ids)
        for conn, task in conns:
            await conn.close()
            task.cancel()
        await asyncio.sleep(1)
        report.rss_before_churn_kib = server.rss_kib()
        await churn(server, ids, cycles, report)
        await asyncio.sleep(2)
        report.rss_after_churn_kib = server.rss_kib()
    finally:
        server.stop()
    report.seconds = round(time.monotonic() - began, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run, for make test")
    parser.add_argument("--subscribers", type=int)
    parser.add_argument("--rate", type=float, help="webhooks per second")
    parser.add_argument("--duration", type=float, help="seconds of webhooks")
    parser.add_argument("--cycles", type=int, help="connect/disconnect cycles")
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args(argv)
    full = {"subscribers": 5000, "rate": 200.0, "duration": 300.0, "cycles": 100_000}
    quick = {"subscribers": 100, "rate": 50.0, "duration": 3.0, "cycles": 300}
    sizes = quick if args.quick else full
    for name in sizes:
        if getattr(args, name) is not None:
            sizes[name] = getattr(args, name)
    with tempfile.TemporaryDirectory(prefix="pixlive-soak-") as tmp:
        report = asyncio.run(run(workdir=Path(tmp) / "server", **sizes))  # type: ignore[arg-type]
    text = json.dumps(asdict(report), indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    ok = report.notifications_lost == 0 and report.webhook_5xx == 0 and report.churn_failures == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
