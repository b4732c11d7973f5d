"""Races, on SQLite and PostgreSQL: concurrent deliveries, sweeps, cancels and idempotent
creates, within one process (one writer, several batches) and across several "processes"
(separate Database + Writer instances on the same database)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from itest import RECEIVER, T0, Stack, at, new_e2e, pix_for

from pixlive.domain.charge import Charge, Status
from pixlive.domain.errors import ChargeFinal
from pixlive.services.charges import Idempotency, NewCharge, cancel_charge, create_charge
from pixlive.services.confirmation import Outcome
from pixlive.services.expiry import expire_due

OpenStack = Callable[..., Awaitable[Stack]]


async def final_events(stack: Stack, payment_id: str) -> list[str]:
    return [e.type for e in await stack.events(payment_id) if e.is_final]


async def many_charges(stack: Stack, n: int, *, expires_in: int) -> list[Charge]:
    """n charges, created concurrently (so in few batches)."""
    return list(
        await asyncio.gather(
            *(stack.new_charge(100 + i, expires_in=expires_in, now=T0) for i in range(n))
        )
    )


@pytest.mark.parametrize("max_batch", [512, 3])
async def test_fifty_deliveries_of_one_pix_pay_once(stack: Stack, max_batch: int) -> None:
    # with small batches, PostgreSQL's writers hold concurrent transactions on the charge
    stack.writer.max_batch = max_batch
    charge = await stack.new_charge(1234)
    pix = pix_for(charge.id, 1234)

    outcomes = await asyncio.gather(*(stack.confirm(pix) for _ in range(50)))

    assert Counter(outcomes) == {Outcome.PAID: 1, Outcome.DUPLICATE: 49}
    events = await stack.events(charge.id)
    assert [e.type for e in events] == ["payment.created", "payment.paid"]
    assert await stack.count("received_pix") == 1
    assert [e.type for e in stack.published].count("payment.paid") == 1
    stored = await stack.read(lambda repo: repo.get_charge(charge.id))
    assert stored is not None and stored.status is Status.PAID
    assert stored.end_to_end_id == pix.end_to_end_id


async def test_two_pix_for_one_charge_at_once_pay_it_once(stack: Stack) -> None:
    charge = await stack.new_charge(1234)
    first, second = pix_for(charge.id, 1234), pix_for(charge.id, 1234)

    outcomes = await asyncio.gather(stack.confirm(first), stack.confirm(second))

    assert sorted(outcomes) == sorted([Outcome.PAID, Outcome.MISMATCH])
    winner = first if outcomes[0] is Outcome.PAID else second
    stored = await stack.read(lambda repo: repo.get_charge(charge.id))
    assert stored is not None and stored.end_to_end_id == winner.end_to_end_id
    types = [e.type for e in await stack.events(charge.id)]
    assert types == ["payment.created", "payment.paid", "payment.mismatch"]
    assert await stack.count("received_pix") == 2


async def test_two_processes_deliver_one_pix_fifty_times_it_pays_once(
    open_stack: OpenStack,
) -> None:
    one, two = await open_stack(), await open_stack()
    charge = await one.new_charge(1234)
    pix = pix_for(charge.id, 1234)

    outcomes = await asyncio.gather(*(s.confirm(pix) for _ in range(25) for s in (one, two)))

    assert Counter(outcomes) == {Outcome.PAID: 1, Outcome.DUPLICATE: 49}
    assert await final_events(one, charge.id) == ["payment.paid"]
    assert await two.count("received_pix") == 1
    published = [e.type for s in (one, two) for e in s.published]
    assert published.count("payment.paid") == 1


async def test_two_processes_many_charges_many_retries(open_stack: OpenStack) -> None:
    """Each charge is paid by one Pix delivered by both processes, and by a second Pix:
    one paid per charge, everything else a duplicate or a mismatch, each Pix once."""
    one, two = await open_stack(), await open_stack()
    charges = [await one.new_charge(100 + n) for n in range(20)]
    pixes = [pix_for(c.id, c.value) for c in charges] + [pix_for(c.id, c.value) for c in charges]

    jobs = [s.confirm(p) for p in pixes for s in (one, two)] + [
        s.confirm(p) for p in reversed(pixes) for s in (two, one)
    ]
    outcomes = await asyncio.gather(*jobs)

    counts = Counter(outcomes)
    assert counts[Outcome.PAID] == 20
    assert counts[Outcome.MISMATCH] == 20
    assert counts[Outcome.DUPLICATE] == len(jobs) - 40
    assert await one.count("received_pix") == 40
    for charge in charges:
        assert await final_events(two, charge.id) == ["payment.paid"]
        stored = await two.read(lambda repo, c=charge: repo.get_charge(c.id))
        assert stored is not None and stored.status is Status.PAID
    assert await one.count("events", "type = 'payment.mismatch'") == 20


async def test_cancel_and_pay_at_once_end_in_one_final_state(open_stack: OpenStack) -> None:
    one, two = await open_stack(), await open_stack()
    charges = [await one.new_charge(500) for _ in range(10)]

    async def cancel(stack: Stack, charge_id: str) -> str:
        try:
            await stack.run(lambda uow: cancel_charge(uow, charge_id, at(1)))
        except ChargeFinal:
            return "refused"
        return "cancelled"

    results = await asyncio.gather(
        *(
            job
            for n, c in enumerate(charges)
            for job in (
                cancel(one if n % 2 else two, c.id),
                (two if n % 2 else one).confirm(pix_for(c.id, 500), at(1)),
            )
        )
    )

    for n, charge in enumerate(charges):
        cancel_result, outcome = results[2 * n], results[2 * n + 1]
        finals = await final_events(one, charge.id)
        stored = await one.read(lambda repo, c=charge: repo.get_charge(c.id))
        assert stored is not None
        if outcome is Outcome.PAID:
            assert cancel_result == "refused"
            assert (finals, stored.status) == (["payment.paid"], Status.PAID)
        else:
            assert (cancel_result, outcome) == ("cancelled", Outcome.MISMATCH)
            assert (finals, stored.status) == (["payment.cancelled"], Status.CANCELLED)
    assert await one.count("received_pix") == 10


@pytest.mark.parametrize("processes", [2, 3])
async def test_sweepers_in_several_processes_expire_each_charge_once(
    open_stack: OpenStack, processes: int
) -> None:
    stacks = [await open_stack() for _ in range(processes)]
    ids = [c.id for c in await many_charges(stacks[0], 200, expires_in=60)]

    async def sweep(stack: Stack) -> int:
        total = 0
        while True:
            done = await stack.run(lambda uow: expire_due(uow, at(61), limit=25))
            total += done
            if not done:
                return total
            await asyncio.sleep(0)

    # every process runs several sweeps at once, as a busy server's writers would
    swept = await asyncio.gather(*(sweep(s) for s in stacks for _ in range(3)))

    assert sum(swept) == 200
    expired = await stacks[0].read(
        lambda repo: repo.all_events_after(0, 10_000)
    )  # every event of the database
    per_charge = Counter(e.payment_id for e in expired if e.type == "payment.expired")
    assert per_charge == dict.fromkeys(ids, 1)
    published = Counter(e.payment_id for s in stacks for e in s.published if e.is_final)
    assert published == dict.fromkeys(ids, 1)
    assert await stacks[-1].count("charges", "status = 'EXPIRED'") == 200


async def test_sweep_and_payments_at_once_give_one_final_event_per_charge(
    open_stack: OpenStack,
) -> None:
    one, two = await open_stack(), await open_stack()
    charges = await many_charges(one, 60, expires_in=60)
    pixes = {c.id: pix_for(c.id, c.value) for c in charges}

    async def sweep(stack: Stack) -> None:
        while await stack.run(lambda uow: expire_due(uow, at(60), limit=10)):
            await asyncio.sleep(0)

    async def pay(stack: Stack, charge_id: str) -> tuple[str, Outcome]:
        # paid a moment before expiry, as the PSP saw it, but processed while sweeping
        return charge_id, await stack.confirm(pixes[charge_id], at(59.999))

    results = await asyncio.gather(
        sweep(one),
        sweep(two),
        *(pay(two if n % 2 else one, c.id) for n, c in enumerate(charges)),
    )
    outcomes = dict(r for r in results if r is not None)

    for charge in charges:
        finals = await final_events(one, charge.id)
        stored = await one.read(lambda repo, c=charge: repo.get_charge(c.id))
        assert stored is not None
        if outcomes[charge.id] is Outcome.PAID:
            assert (finals, stored.status) == (["payment.paid"], Status.PAID)
        else:
            assert outcomes[charge.id] is Outcome.MISMATCH
            assert (finals, stored.status) == (["payment.expired"], Status.EXPIRED)
    assert await one.count("received_pix") == 60


async def test_concurrent_creates_with_one_idempotency_key_make_one_charge(
    open_stack: OpenStack,
) -> None:
    one, two = await open_stack(), await open_stack()
    key = Idempotency(api_key_id=7, key="checkout-1", request_hash="c" * 64)
    command = NewCharge(value=990, expires_in=600)

    results = await asyncio.gather(
        *(
            s.run(lambda uow: create_charge(uow, command, RECEIVER, T0, key))
            for _ in range(10)
            for s in (one, two)
        )
    )

    assert len({charge.id for charge, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1
    assert await one.count("charges") == 1
    assert await one.count("events") == 1
    assert await one.count("idempotency_keys") == 1
    assert len(one.published) + len(two.published) == 1


async def test_an_end_to_end_id_is_unique_across_charges(stack: Stack) -> None:
    """The same endToEndId names one Pix, even when a second delivery names another txid."""
    first, second = await stack.new_charge(100), await stack.new_charge(100)
    e2e = new_e2e()

    outcomes = await asyncio.gather(
        stack.confirm(pix_for(first.id, 100, e2e=e2e)),
        stack.confirm(pix_for(second.id, 100, e2e=e2e)),
    )

    assert sorted(outcomes) == sorted([Outcome.PAID, Outcome.DUPLICATE])
    statuses = []
    for charge in (first, second):
        stored = await stack.read(lambda repo, c=charge: repo.get_charge(c.id))
        assert stored is not None
        statuses.append(stored.status)
    assert sorted(statuses) == [Status.ACTIVE, Status.PAID]
    assert await stack.count("received_pix") == 1
