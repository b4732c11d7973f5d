"""/metrics with `serve --workers 2`: whichever worker answers the scrape gives the figures
of both (prometheus-client's multiprocess mode), not its own alone."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from pixlive.services.psp import signed_headers, webhook_body
from tests.e2e.conftest import Server, start_server

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

PAID = re.compile(r'^pixlive_webhook_pix_total\{outcome="paid"\} (\S+)$', re.MULTILINE)


def paid_counts(server: Server, scrapes: int) -> list[float]:
    """`paid` of `scrapes` scrapes, each on a new connection (so the kernel hands them
    to either worker)."""
    counts = []
    for _ in range(scrapes):
        answer = httpx.get(server.url + "/metrics", timeout=10, trust_env=False)
        assert answer.status_code == 200, answer.text
        found = PAID.search(answer.text)
        counts.append(float(found.group(1)) if found else 0.0)
    return counts


def pay_on_a_new_connection(server: Server, payment_id: str) -> None:
    body = webhook_body(payment_id, "12.34")
    with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as client:
        answer = client.post(
            "/payments/pix/confirmation", content=body, headers=signed_headers(server.secret, body)
        )
    assert answer.json()["results"][0]["outcome"] == "paid", answer.text


def start_two_workers(workdir: Path, database_url: str, bus_url: str) -> Server:
    return start_server(
        workdir,
        workers=2,
        timeout=90,  # two workers import the app at once: slow on a loaded machine
        PIXLIVE_DATABASE_URL=database_url,
        PIXLIVE_BUS_URL=bus_url,
    )


async def test_metrics_are_summed_across_workers(
    tmp_path: Path, pg_database: str, redis_url: str
) -> None:
    server = await asyncio.to_thread(start_two_workers, tmp_path / "server", pg_database, redis_url)
    try:
        for _ in range(4):
            charge = await asyncio.to_thread(server.create_charge, "12.34")
            # Each on a new connection: the deliveries land on both workers too.
            await asyncio.to_thread(pay_on_a_new_connection, server, charge["id"])
        counts = await asyncio.to_thread(paid_counts, server, 20)
        assert counts == [4.0] * 20, counts
    finally:
        server.stop()
