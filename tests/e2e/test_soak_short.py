"""The short version of `make soak`: subscribers, a steady stream of webhooks, churn.
It asserts what a user would: nothing lost, nothing repeated, no 5xx; no timings."""

from __future__ import annotations

from pathlib import Path

from soak.run import run


async def test_short_soak_loses_nothing(tmp_path: Path) -> None:
    report = await run(subscribers=60, rate=40, duration=3, cycles=300, workdir=tmp_path / "s")
    assert report.webhooks_sent >= 100
    assert report.webhook_5xx == 0
    assert report.webhook_errors == 0
    assert report.notifications_expected > 0
    assert report.notifications_lost == 0
    assert report.notifications_repeated == 0
    assert report.churn_failures == 0
