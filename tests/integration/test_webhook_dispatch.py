"""The webhook dispatcher against the real SQLite and PostgreSQL, with a fake clock and a
fake sender: the schedule as the database keeps it, each attempt made once by one of two
processes, a lapsed lease taken over, and a slow endpoint that holds up no other."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from itest import T0, Stack

from pixlive.domain.charge import Charge
from pixlive.domain.webhook_delivery import SCHEDULE, Answer
from pixlive.domain.webhook_endpoint import Endpoint
from pixlive.domain.webhook_url import UrlPolicy
from pixlive.services.webhook_dispatch import Dispatcher, Limits
from pixlive.services.webhook_endpoints import create_endpoint
from pixlive.services.webhook_ports import WebhookStore
from pixlive.webhook_runtime import WebhookTransactions

SANDBOX = UrlPolicy(https_only=False, public_only=False)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class FakeSender:
    """Answers `status(url)`; a URL in `hold` waits until released."""

    status: Callable[[str], int] = lambda url: 200
    sent: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    hold: set[str] = field(default_factory=set)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    fast_done: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> Answer:
        self.sent.append((url, headers, body))
        if sum(sent[0].endswith("/fast") for sent in self.sent) == 10:
            self.fast_done.set()
        if url in self.hold:
            await self.release.wait()
        return Answer(self.status(url), None, 1.0, "ok")

    async def close(self) -> None:
        pass


def render(charge: Charge) -> dict[str, Any]:
    return {"id": charge.id, "metadata": charge.metadata}


def dispatcher(stack: Stack, sender: FakeSender, clock: Clock, **limits: Any) -> Dispatcher:
    return Dispatcher(
        WebhookTransactions(stack.writer, stack.db),
        sender,
        render,
        clock=clock,
        limits=Limits(**limits),
        random=lambda: 0.5,  # no jitter: the waits are the schedule's
    )


async def endpoint(stack: Stack, url: str, **fields: Any) -> Endpoint:
    tx = WebhookTransactions(stack.writer, stack.db)

    async def job(store: WebhookStore) -> Endpoint:
        return await create_endpoint(
            store,
            url=url,
            events=fields.get("events"),
            description=None,
            policy=SANDBOX,
            now=T0,
        )

    return await tx.write(job)


async def round_(d: Dispatcher) -> int:
    """One round of the dispatcher, its attempts finished; how many it leased."""
    done = await d.step()
    await d.idle()
    return len(done.claimed)


async def statuses(stack: Stack) -> list[tuple[str, int]]:
    async with stack.db.read() as reader:
        conn = reader.conn
        rows = await conn.fetch("SELECT status, attempts FROM webhook_deliveries ORDER BY id")
    return [(row[0], row[1]) for row in rows]


async def test_a_failing_endpoint_is_tried_on_the_schedule_then_exhausted(stack: Stack) -> None:
    clock = Clock()
    sender = FakeSender(status=lambda url: 500)
    d = dispatcher(stack, sender, clock)
    await endpoint(stack, "http://127.0.0.1:9/a", events=["payment.created"])
    await stack.new_charge(metadata={"order": "7"})

    assert await round_(d) == 1  # at once
    for wait in SCHEDULE[1:]:
        clock.advance(wait - 0.01)
        assert await round_(d) == 0, "not before its time"
        clock.advance(0.01)
        assert await round_(d) == 1
    clock.advance(10 * 86400)
    assert await round_(d) == 0
    assert await statuses(stack) == [("exhausted", len(SCHEDULE))]
    ids = {headers["webhook-id"] for _, headers, _ in sender.sent}
    assert len(sender.sent) == len(SCHEDULE) and len(ids) == 1
    async with stack.db.read() as reader:
        conn = reader.conn
        numbers = [r[0] for r in await conn.fetch("SELECT number FROM webhook_attempts")]
    assert sorted(numbers) == list(range(1, len(SCHEDULE) + 1))


async def test_a_success_after_failures_ends_the_schedule(stack: Stack) -> None:
    clock = Clock()
    answers = iter([500, 503, 200])
    d = dispatcher(stack, FakeSender(status=lambda url: next(answers)), clock)
    await endpoint(stack, "http://127.0.0.1:9/a")
    await stack.new_charge()
    assert await round_(d) == 1
    clock.advance(5)
    assert await round_(d) == 1
    clock.advance(300)
    assert await round_(d) == 1
    clock.advance(86400)
    assert await round_(d) == 0
    assert await statuses(stack) == [("succeeded", 3)]


async def test_a_slow_endpoint_holds_up_no_other(stack: Stack) -> None:
    clock = Clock()
    sender = FakeSender()
    slow = "http://127.0.0.1:9/slow"
    sender.hold.add(slow)
    d = dispatcher(stack, sender, clock, per_endpoint=2, total=8)
    await endpoint(stack, slow)
    await endpoint(stack, "http://127.0.0.1:9/fast")
    for _ in range(10):
        await stack.new_charge()
    # The dispatcher's own loop, until the fast endpoint has all ten while the slow one
    # answers nothing.
    await d.start()
    await asyncio.wait_for(sender.fast_done.wait(), 20)
    assert len([s for s in sender.sent if s[0] == slow]) == 2  # its own limit, no more
    await d.close()  # the two held attempts cut off: made again once their lease lapses
    sender.release.set()
    clock.advance(Limits().lease.total_seconds())
    for _ in range(20):
        await round_(d)
    assert len([s for s in sender.sent if s[0] == slow]) == 10 + 2
    assert {status for status, _ in await statuses(stack)} == {"succeeded"}


async def test_a_lease_left_by_a_dead_process_lapses_and_is_taken_over(stack: Stack) -> None:
    clock = Clock()
    dead_sender, live_sender = FakeSender(), FakeSender()
    dead_sender.hold.add("http://127.0.0.1:9/a")
    dead = dispatcher(stack, dead_sender, clock)
    live = dispatcher(stack, live_sender, clock)
    await endpoint(stack, "http://127.0.0.1:9/a")
    await stack.new_charge()
    assert len((await dead.step()).claimed) == 1  # and it never answers
    assert await round_(live) == 0, "leased to the other"
    clock.advance(Limits().lease.total_seconds())
    assert await round_(live) == 1
    assert await statuses(stack) == [("succeeded", 2)]
    # The dead one's late answer is not recorded over the live one's.
    dead_sender.release.set()
    await dead.idle()
    assert await statuses(stack) == [("succeeded", 2)]
    async with stack.db.read() as reader:
        conn = reader.conn
        assert len(await conn.fetch("SELECT id FROM webhook_attempts")) == 1


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_two_processes_share_a_backlog_and_make_each_attempt_once(
    open_stack: Callable[..., Awaitable[Stack]],
) -> None:
    one, two = await open_stack(), await open_stack()
    clock = Clock()
    sent_one, sent_two = FakeSender(), FakeSender()
    first = dispatcher(one, sent_one, clock, total=16)
    second = dispatcher(two, sent_two, clock, total=16)
    await endpoint(one, "http://127.0.0.1:9/a")
    await endpoint(one, "http://127.0.0.1:9/b")
    for _ in range(100):
        await one.new_charge()
    for _ in range(50):
        done = await asyncio.gather(first.step(), second.step())
        await asyncio.gather(first.idle(), second.idle())
        idle = not any(r.claimed for r in done) and all(r.fanned_out == 0 for r in done)
        if idle and {s for s, _ in await statuses(one)} == {"succeeded"}:
            break
    sent = [(url, h["webhook-id"]) for url, h, _ in sent_one.sent + sent_two.sent]
    assert len(sent) == 200 and len(set(sent)) == 200  # each (endpoint, event) once
    assert sent_one.sent and sent_two.sent  # both took a share
    assert await statuses(one) == [("succeeded", 1)] * 200
