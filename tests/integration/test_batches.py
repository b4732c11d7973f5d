"""Batches through the writer, on SQLite and PostgreSQL: the confirmations of one batch are
decided together and written set-wise, with the outcomes, rows and events the rules give
one at a time; and what no decision can know beforehand (another process's ledger row, a
value the database refuses, a job that fails beside them) ends each caller as it would
end alone. The rules themselves: tests/unit/test_confirmation.py."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from itest import RECEIVER, T0, WAIT, Gate, Stack, at, confirm_in, new_e2e, pix_for

from pixlive.adapters.errors import InvalidData
from pixlive.adapters.sqlite_connection import sqlite_path
from pixlive.domain.charge import Status
from pixlive.domain.errors import ChargeFinal, DomainError
from pixlive.services.charges import NewCharge, cancel_charge, create_charge
from pixlive.services.confirmation import IncomingPix, Outcome, confirm
from pixlive.services.unit_of_work import UnitOfWork, jobs

OpenStack = Callable[..., Awaitable[Stack]]
Call = tuple[Any, Any]  # an operation of the writer, and one caller's item


async def one_writer(open_stack: OpenStack) -> Stack:
    return await open_stack(writers=1)


async def in_one_batch(stack: Stack, calls: list[Call], now: Any = T0) -> list[Any]:
    """Runs the calls in one batch at `now`, as the writer gathers the webhook's; a
    delivery's list of one outcome is given as that outcome."""
    gate = Gate()
    blocker = asyncio.ensure_future(stack.run(gate))
    await asyncio.wait_for(gate.entered.wait(), WAIT)
    stack.clock.at = now
    futures = [stack.writer.submit(operation, item) for operation, item in calls]
    gate.release.set()
    await blocker
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), WAIT)
    return [r[0] if isinstance(r, list) and len(r) == 1 else r for r in results]


def confirming(pix: IncomingPix) -> Call:
    return confirm, [pix]


def job(function: Callable[[UnitOfWork], Awaitable[Any]]) -> Call:
    return jobs, function


async def assert_consistent(stack: Stack, charge_ids: list[str]) -> None:
    """Each charge's last_event_id is its newest event, and what was published is exactly
    what the database holds (the ids included)."""
    for charge_id in charge_ids:
        stored = await stack.read(lambda repo, c=charge_id: repo.get_charge(c))
        events = await stack.events(charge_id)
        assert stored is not None and stored.last_event_id == events[-1].id
        published = [e for e in stack.published if e.payment_id == charge_id]
        assert published == events


async def test_a_batch_of_confirmations_is_written_together(open_stack: OpenStack) -> None:
    stack = await one_writer(open_stack)
    charges = [await stack.new_charge(100 + n) for n in range(5)]
    batches, reruns = stack.writer.batches, stack.writer.reruns
    published = len(stack.published)

    results = await in_one_batch(stack, [confirming(pix_for(c.id, c.value)) for c in charges])

    assert results == [Outcome.PAID] * 5
    assert stack.writer.batches == batches + 2  # the gate's, then all five together
    assert stack.writer.reruns == reruns
    assert len(stack.published) == published + 5
    assert await stack.count("received_pix", "outcome = 'paid'") == 5
    for charge in charges:
        stored = await stack.read(lambda repo, c=charge: repo.get_charge(c.id))
        assert stored is not None and stored.status is Status.PAID
        assert stored.paid_at == T0 and stored.end_to_end_id is not None
    await assert_consistent(stack, [c.id for c in charges])


async def test_one_end_to_end_id_twice_in_a_batch_pays_once(open_stack: OpenStack) -> None:
    stack = await one_writer(open_stack)
    charge, other = await stack.new_charge(1234), await stack.new_charge(500)
    pix = pix_for(charge.id, 1234)

    results = await in_one_batch(
        stack, [confirming(pix) for _ in range(5)] + [confirming(pix_for(other.id, 500))]
    )

    assert Counter(results) == {Outcome.PAID: 2, Outcome.DUPLICATE: 4}
    assert results[0] is Outcome.PAID and results[5] is Outcome.PAID
    assert await stack.count("received_pix") == 2
    assert [e.type for e in await stack.events(charge.id)] == ["payment.created", "payment.paid"]
    await assert_consistent(stack, [charge.id, other.id])


async def test_an_end_to_end_id_already_in_the_ledger_is_a_duplicate(
    open_stack: OpenStack,
) -> None:
    """The retry of a delivery an earlier batch recorded, in a batch with a second Pix for
    the same (now paid) charge: DUPLICATE, changing nothing of its charge."""
    stack = await one_writer(open_stack)
    charge, other = await stack.new_charge(1234), await stack.new_charge(500)
    first = pix_for(charge.id, 1234)
    assert await in_one_batch(stack, [confirming(first)]) == [Outcome.PAID]
    reruns = stack.writer.reruns
    late = pix_for(charge.id, 1234)

    results = await in_one_batch(
        stack, [confirming(first), confirming(late), confirming(pix_for(other.id, 500))]
    )

    assert results == [Outcome.DUPLICATE, Outcome.MISMATCH, Outcome.PAID]
    assert stack.writer.reruns == reruns  # nothing failed
    assert await stack.count("received_pix") == 3
    types = [e.type for e in await stack.events(charge.id)]
    assert types == ["payment.created", "payment.paid", "payment.mismatch"]
    stored = await stack.read(lambda repo: repo.get_charge(charge.id))
    assert stored is not None and stored.end_to_end_id == first.end_to_end_id
    await assert_consistent(stack, [charge.id, other.id])


async def test_two_pix_for_one_charge_in_a_batch(open_stack: OpenStack) -> None:
    stack = await one_writer(open_stack)
    charge = await stack.new_charge(1234)
    first, second = pix_for(charge.id, 1234), pix_for(charge.id, 1234)

    results = await in_one_batch(stack, [confirming(first), confirming(second)])

    assert results == [Outcome.PAID, Outcome.MISMATCH]
    events = await stack.events(charge.id)
    assert [e.type for e in events] == ["payment.created", "payment.paid", "payment.mismatch"]
    assert events[2].data["reason"] == "charge_final"
    stored = await stack.read(lambda repo: repo.get_charge(charge.id))
    assert stored is not None and stored.status is Status.PAID
    assert stored.end_to_end_id == first.end_to_end_id
    await assert_consistent(stack, [charge.id])


async def test_mismatch_unknown_txid_and_expiry_in_a_batch(open_stack: OpenStack) -> None:
    stack = await one_writer(open_stack)
    short, due = await stack.new_charge(1234), await stack.new_charge(200, expires_in=60)

    results = await in_one_batch(
        stack,
        [
            confirming(pix_for(short.id, 1000)),  # too little
            confirming(pix_for("U" * 25, 1000)),  # no such charge
            confirming(pix_for(due.id, 200)),  # arrives after expiry
            confirming(pix_for(None, 300)),  # no txid at all: names no charge
        ],
        now=at(61),
    )

    assert results == [
        Outcome.MISMATCH,
        Outcome.UNKNOWN_TXID,
        Outcome.MISMATCH,
        Outcome.UNKNOWN_TXID,
    ]
    assert [e.type for e in await stack.events(due.id)] == [
        "payment.created",
        "payment.expired",
        "payment.mismatch",
    ]
    stored = await stack.read(lambda repo: repo.get_charge(due.id))
    assert stored is not None and stored.status is Status.EXPIRED
    stored = await stack.read(lambda repo: repo.get_charge(short.id))
    assert stored is not None and stored.status is Status.ACTIVE
    assert await stack.count("received_pix", "outcome = 'unknown_txid'") == 2
    assert await stack.count("received_pix", "outcome = 'mismatch'") == 2
    await assert_consistent(stack, [short.id, due.id])


async def test_jobs_that_write_something_else_share_the_batch(open_stack: OpenStack) -> None:
    """A cancel and a create, a job that fails after confirming, beside plain
    confirmations: each ends as it would alone."""
    stack = await one_writer(open_stack)
    paid, cancelled, failing = [await stack.new_charge(100 + n) for n in range(3)]

    class Boom(DomainError):
        pass

    async def confirms_then_fails(uow: UnitOfWork) -> None:
        await confirm_in(uow, pix_for(failing.id, 102), T0)
        raise Boom("refused after recording")

    command = NewCharge(value=700, expires_in=60)
    results = await in_one_batch(
        stack,
        [
            confirming(pix_for(paid.id, 100)),
            job(lambda uow: cancel_charge(uow, cancelled.id, at(1))),
            job(confirms_then_fails),
            confirming(pix_for(cancelled.id, 101)),
            job(lambda uow: cancel_charge(uow, paid.id, at(3))),
        ],
    )
    created = await in_one_batch(
        stack,
        [
            job(lambda uow: create_charge(uow, command, RECEIVER, T0)),
            confirming(pix_for(failing.id, 102)),
        ],
    )

    assert results[0] is Outcome.PAID
    assert results[1].status is Status.CANCELLED
    assert isinstance(results[2], Boom)
    assert results[3] is Outcome.MISMATCH
    assert isinstance(results[4], ChargeFinal)
    assert created[1] is Outcome.PAID
    assert await stack.count("charges") == 4
    assert [e.type for e in await stack.events(failing.id)] == [
        "payment.created",
        "payment.paid",
    ]
    await assert_consistent(stack, [paid.id, cancelled.id, failing.id])


async def test_a_value_the_database_refuses_fails_its_job_alone(open_stack: OpenStack) -> None:
    """PostgreSQL refuses an endToEndId longer than its column: the set-wise statement
    fails, and the ordinary run gives that job alone the error."""
    stack = await one_writer(open_stack)
    good, bad = await stack.new_charge(100), await stack.new_charge(200)
    too_long = pix_for(bad.id, 200, e2e="E" + "x" * 40)

    results = await in_one_batch(stack, [confirming(pix_for(good.id, 100)), confirming(too_long)])

    assert results[0] is Outcome.PAID
    if stack.url.startswith("sqlite"):  # SQLite keeps the text as given
        assert results[1] is Outcome.PAID
    else:
        assert isinstance(results[1], InvalidData)
        stored = await stack.read(lambda repo: repo.get_charge(bad.id))
        assert stored is not None and stored.status is Status.ACTIVE
        assert await stack.count("received_pix") == 1
    await assert_consistent(stack, [good.id])


async def test_another_process_records_the_same_end_to_end_id_meanwhile(
    open_stack: OpenStack,
) -> None:
    """Another process has inserted the ledger row, not yet committed, when the batch
    runs: on SQLite the batch waits for its lock and then sees the row; on PostgreSQL the
    batch's insert waits for it, finds the row taken, and the batch runs again."""
    stack = await one_writer(open_stack)
    charge, other = await stack.new_charge(1234), await stack.new_charge(500)
    pix = pix_for(charge.id, 1234)
    insert = (
        "INSERT INTO received_pix (end_to_end_id, txid, value, horario, raw, outcome, "
        "payment_id, received_at) VALUES ($1, $2, 1234, '', '{}', 'paid', $2, 0)"
    )
    if stack.url.startswith("sqlite"):
        raw = sqlite3.connect(sqlite_path(stack.url), isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        raw.execute(insert.replace("$1", "?1").replace("$2", "?2"), (pix.end_to_end_id, charge.id))

        async def commit() -> None:
            raw.execute("COMMIT")
            raw.close()

    else:
        conn = await asyncpg.connect(stack.url)
        await conn.execute("BEGIN")
        await conn.execute(insert, pix.end_to_end_id, charge.id)

        async def commit() -> None:
            await conn.execute("COMMIT")
            await conn.close()

    futures = [stack.writer.submit(confirm, [p]) for p in (pix, pix_for(other.id, 500))]
    await asyncio.sleep(0.3)
    assert not any(f.done() for f in futures)  # waiting on the other's lock
    await commit()
    results = await asyncio.wait_for(asyncio.gather(*futures), WAIT)

    assert results == [[Outcome.DUPLICATE], [Outcome.PAID]]
    stored = await stack.read(lambda repo: repo.get_charge(charge.id))
    assert stored is not None and stored.status is Status.ACTIVE
    assert [e.type for e in await stack.events(charge.id)] == ["payment.created"]
    assert await stack.count("received_pix") == 2
    assert [e.payment_id for e in stack.published if e.type == "payment.paid"] == [other.id]
    await assert_consistent(stack, [other.id])


async def test_many_deliveries_with_retries_in_two_processes(open_stack: OpenStack) -> None:
    """Two processes, each with its writers, get every delivery several times (PSP
    retries), as the webhook sends them: each charge is paid exactly once."""
    first, second = await open_stack(), await open_stack()
    charges = [await first.new_charge(100 + n) for n in range(20)]
    pixes = [pix_for(c.id, c.value) for c in charges]
    extra = [pix_for(c.id, c.value, e2e=new_e2e()) for c in charges[:5]]
    futures = [
        stack.writer.submit(confirm, [pix])
        for stack in (first, second)
        for pix in [*pixes, *pixes, *extra]
    ]

    results = [outcome for (outcome,) in await asyncio.wait_for(asyncio.gather(*futures), WAIT)]

    assert Counter(results)[Outcome.PAID] == 20
    assert Counter(results)[Outcome.MISMATCH] == 5
    assert await first.count("received_pix") == 25
    assert await first.count("events", "type = 'payment.paid'") == 20
    for charge in charges:
        stored = await first.read(lambda repo, c=charge: repo.get_charge(c.id))
        events = await first.events(charge.id)
        assert stored is not None and stored.status is Status.PAID
        assert stored.last_event_id == events[-1].id
    published = sorted(
        e.id for s in (first, second) for e in s.published if e.type != "payment.created"
    )
    assert len(published) == 25 and len(set(published)) == 25
