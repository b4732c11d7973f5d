"""The set-wise batch (adapters/setwise.py), on SQLite and PostgreSQL: a batch of
confirmations that named their charges is written in one go, with the same outcomes, rows
and events as one statement at a time; and every case it cannot decide beforehand (a
retried endToEndId, another process's ledger row, a refused value, a job that writes
something else) ends as the ordinary run would end it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from itest import RECEIVER, T0, WAIT, Gate, Stack, at, new_e2e, pix_for

from pixlive.adapters.errors import InvalidData
from pixlive.adapters.sqlite import sqlite_path
from pixlive.domain.charge import Status
from pixlive.domain.errors import ChargeFinal, DomainError
from pixlive.services.charges import NewCharge, cancel_charge, create_charge
from pixlive.services.confirmation import IncomingPix, Outcome, confirm_pix
from pixlive.services.unit_of_work import UnitOfWork

OpenStack = Callable[..., Awaitable[Stack]]
Call = tuple[Callable[[UnitOfWork], Awaitable[Any]], list[str]]


async def one_writer(open_stack: OpenStack) -> Stack:
    return await open_stack(writers=1)


async def in_one_batch(stack: Stack, calls: list[Call]) -> list[Any]:
    """Runs the calls (job, the charges it names) in one batch, as the webhook does."""
    gate = Gate()
    blocker = asyncio.ensure_future(stack.run(gate))
    await asyncio.wait_for(gate.entered.wait(), WAIT)
    batches = stack.writer.batches
    futures = [stack.writer.submit(job, charges=charges) for job, charges in calls]
    gate.release.set()
    await blocker
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), WAIT)
    assert stack.writer.batches == batches + 2  # the gate's batch, then all of them together
    return list(results)


def confirming(pix: IncomingPix, now: Any = T0) -> Call:
    return (lambda uow: confirm_pix(uow, pix, now)), [pix.txid] if pix.txid else []


async def assert_consistent(stack: Stack, charge_ids: list[str]) -> None:
    """Each charge's last_event_id is its newest event, and what was published is exactly
    what the database holds (the ids included)."""
    for charge_id in charge_ids:
        stored = await stack.read(lambda repo, c=charge_id: repo.get_charge(c))
        events = await stack.events(charge_id)
        assert stored is not None and stored.last_event_id == events[-1].id
        published = [e for e in stack.published if e.payment_id == charge_id]
        assert published == events


async def test_a_batch_of_confirmations_is_written_set_wise(open_stack: OpenStack) -> None:
    stack = await one_writer(open_stack)
    charges = [await stack.new_charge(100 + n) for n in range(5)]
    set_wise, reruns = stack.writer.set_wise, stack.writer.reruns
    published = len(stack.published)

    results = await in_one_batch(stack, [confirming(pix_for(c.id, c.value)) for c in charges])

    assert results == [Outcome.PAID] * 5
    assert stack.writer.set_wise == set_wise + 1
    assert stack.writer.reruns == reruns
    assert len(stack.published) == published + 5
    assert await stack.count("received_pix", "outcome = 'paid'") == 5
    for charge in charges:
        stored = await stack.read(lambda repo, c=charge: repo.get_charge(c.id))
        assert stored is not None and stored.status is Status.PAID
        assert stored.paid_at == T0 and stored.end_to_end_id is not None
    await assert_consistent(stack, [c.id for c in charges])


async def test_a_lone_confirmation_goes_the_ordinary_way(open_stack: OpenStack) -> None:
    stack = await one_writer(open_stack)
    charge = await stack.new_charge(100)
    set_wise = stack.writer.set_wise
    assert await in_one_batch(stack, [confirming(pix_for(charge.id, charge.value))]) == [
        Outcome.PAID
    ]
    assert stack.writer.set_wise == set_wise
    await assert_consistent(stack, [charge.id])


async def test_one_end_to_end_id_twice_in_a_batch_pays_once(open_stack: OpenStack) -> None:
    stack = await one_writer(open_stack)
    charge, other = await stack.new_charge(1234), await stack.new_charge(500)
    pix = pix_for(charge.id, 1234)
    set_wise = stack.writer.set_wise

    results = await in_one_batch(
        stack, [confirming(pix) for _ in range(5)] + [confirming(pix_for(other.id, 500))]
    )

    assert Counter(results) == {Outcome.PAID: 2, Outcome.DUPLICATE: 4}
    assert results[0] is Outcome.PAID and results[5] is Outcome.PAID
    assert stack.writer.set_wise == set_wise + 1
    assert await stack.count("received_pix") == 2
    assert [e.type for e in await stack.events(charge.id)] == ["payment.created", "payment.paid"]
    await assert_consistent(stack, [charge.id, other.id])


async def test_an_end_to_end_id_already_in_the_ledger_is_a_duplicate(
    open_stack: OpenStack,
) -> None:
    """The retry of a delivery an earlier batch recorded: the batch cannot stand as run
    set-wise, and the ordinary run answers DUPLICATE, changing nothing of its charge."""
    stack = await one_writer(open_stack)
    charge, other = await stack.new_charge(1234), await stack.new_charge(500)
    first = pix_for(charge.id, 1234)
    assert await in_one_batch(stack, [confirming(first)]) == [Outcome.PAID]
    set_wise, reruns = stack.writer.set_wise, stack.writer.reruns
    # the retry shares its batch with a second Pix for the same (now paid) charge
    late = pix_for(charge.id, 1234)

    results = await in_one_batch(
        stack, [confirming(first), confirming(late), confirming(pix_for(other.id, 500))]
    )

    assert results == [Outcome.DUPLICATE, Outcome.MISMATCH, Outcome.PAID]
    assert stack.writer.set_wise == set_wise  # run the ordinary way
    assert stack.writer.reruns == reruns  # but with no savepoints: nothing failed
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
    set_wise = stack.writer.set_wise

    results = await in_one_batch(
        stack,
        [
            confirming(pix_for(short.id, 1000), at(1)),  # too little
            confirming(pix_for("U" * 25, 1000), at(1)),  # no such charge
            confirming(pix_for(due.id, 200), at(61)),  # arrives after expiry
            confirming(pix_for(None, 300), at(1)),  # no txid at all: names no charge
        ],
    )

    assert results == [
        Outcome.MISMATCH,
        Outcome.UNKNOWN_TXID,
        Outcome.MISMATCH,
        Outcome.UNKNOWN_TXID,
    ]
    # the Pix without a txid names no charge, so that batch went the ordinary way
    assert stack.writer.set_wise == set_wise
    results = await in_one_batch(
        stack,
        [
            confirming(pix_for(short.id, 1000), at(2)),
            confirming(pix_for("V" * 25, 1000), at(2)),
        ],
    )
    assert results == [Outcome.MISMATCH, Outcome.UNKNOWN_TXID]
    assert stack.writer.set_wise == set_wise + 1
    assert [e.type for e in await stack.events(due.id)] == [
        "payment.created",
        "payment.expired",
        "payment.mismatch",
    ]
    stored = await stack.read(lambda repo: repo.get_charge(due.id))
    assert stored is not None and stored.status is Status.EXPIRED
    stored = await stack.read(lambda repo: repo.get_charge(short.id))
    assert stored is not None and stored.status is Status.ACTIVE
    assert await stack.count("received_pix", "outcome = 'unknown_txid'") == 3
    assert await stack.count("received_pix", "outcome = 'mismatch'") == 3
    await assert_consistent(stack, [short.id, due.id])


async def test_jobs_that_write_something_else_share_the_batch(open_stack: OpenStack) -> None:
    """A cancel and a create (which the set-wise run does not defer), a job that fails
    after confirming, beside plain confirmations: each ends as it would alone."""
    stack = await one_writer(open_stack)
    paid, cancelled, failing = [await stack.new_charge(100 + n) for n in range(3)]

    class Boom(DomainError):
        pass

    async def confirms_then_fails(uow: UnitOfWork) -> None:
        await confirm_pix(uow, pix_for(failing.id, 102), T0)
        raise Boom("refused after recording")

    command = NewCharge(value=700, expires_in=60)
    results = await in_one_batch(
        stack,
        [
            confirming(pix_for(paid.id, 100)),
            ((lambda uow: cancel_charge(uow, cancelled.id, at(1))), [cancelled.id]),
            (confirms_then_fails, [failing.id]),
            confirming(pix_for(cancelled.id, 101), at(2)),
            ((lambda uow: cancel_charge(uow, paid.id, at(3))), [paid.id]),
        ],
    )
    created = await in_one_batch(
        stack,
        [
            ((lambda uow: create_charge(uow, command, RECEIVER, T0)), ["X" * 25]),
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
    writes: the batch waits for it, finds the row taken, and ends the ordinary way (on
    PostgreSQL, after rolling back what it had written)."""
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

    futures = [
        stack.writer.submit(job, charges=charges)
        for job, charges in (confirming(pix), confirming(pix_for(other.id, 500)))
    ]
    await asyncio.sleep(0.3)
    assert not any(f.done() for f in futures)  # waiting on the other's lock
    await commit()
    results = await asyncio.wait_for(asyncio.gather(*futures), WAIT)

    assert results == [Outcome.DUPLICATE, Outcome.PAID]
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
    jobs = []
    for stack in (first, second):
        for pix in [*pixes, *pixes, *extra]:
            job, hint = confirming(pix)
            jobs.append(stack.writer.submit(job, charges=hint))

    results = await asyncio.wait_for(asyncio.gather(*jobs), WAIT)

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
