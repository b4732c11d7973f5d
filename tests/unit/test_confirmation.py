"""The money rules of services/confirmation.py, each against an in-memory store.

What a user would check: the outcome the PSP is answered, the ledger, the charge's status
and the events pages hear of. The same rules under real concurrency, on SQLite and
PostgreSQL, are in tests/integration/test_races.py.
"""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from fakes import FixedClock, MemoryStore

from pixlive.domain.charge import Charge, Status
from pixlive.domain.ids import new_charge_id
from pixlive.services.confirmation import confirm, decide
from pixlive.services.records import IncomingPix, Outcome

NOW = FixedClock().now()
_counter = iter(range(10**6))


def charge(value: int = 1234, status: Status = Status.ACTIVE, expires_in: int = 600) -> Charge:
    return Charge(
        id=new_charge_id(),
        value=value,
        status=status,
        created_at=NOW - timedelta(seconds=60),
        expires_at=NOW + timedelta(seconds=expires_in),
        brcode="000201",
    )


def pix(txid: str | None, value: int = 1234, e2e: str | None = None) -> IncomingPix:
    e2e = e2e or f"E{next(_counter):031d}"
    return IncomingPix(
        end_to_end_id=e2e,
        txid=txid,
        value=value,
        horario=NOW - timedelta(seconds=1),
        raw={"endToEndId": e2e, "txid": txid, "horario": "2026-11-28T11:59:59.123Z"},
    )


async def run(store: MemoryStore, *deliveries: list[IncomingPix]) -> list[list[Outcome]]:
    done = await confirm(store, list(deliveries), NOW)
    assert list(done.events) == store.events[len(store.events) - len(done.events) :]
    results = [result for result in done.results if isinstance(result, list)]
    assert len(results) == len(deliveries)
    return results


def types(store: MemoryStore, payment_id: str) -> list[str]:
    return [event.type for event in store.events if event.payment_id == payment_id]


async def test_a_pix_of_the_charges_value_pays_it() -> None:
    store = MemoryStore()
    c = store.add(charge())
    p = pix(c.id)

    assert await run(store, [p]) == [[Outcome.PAID]]

    paid = store.charges[c.id]
    assert paid.status is Status.PAID
    assert paid.end_to_end_id == p.end_to_end_id
    assert paid.paid_at == p.horario
    assert types(store, c.id) == ["payment.paid"]
    assert store.events[0].data == {"value": "12.34", "end_to_end_id": p.end_to_end_id}
    assert paid.last_event_id == store.events[-1].id
    ledger = store.ledger[p.end_to_end_id]
    assert (ledger.outcome, ledger.payment_id, ledger.value) == ("paid", c.id, 1234)


async def test_the_same_end_to_end_id_again_changes_nothing() -> None:
    store = MemoryStore()
    c = store.add(charge())
    p = pix(c.id)
    await run(store, [p])
    before = (copy.copy(store.charges[c.id]), list(store.events), dict(store.ledger))

    assert await run(store, [p]) == [[Outcome.DUPLICATE]]
    # a retry of a mismatch, or with another value, is a duplicate all the same
    assert await run(store, [pix(c.id, value=1, e2e=p.end_to_end_id)]) == [[Outcome.DUPLICATE]]

    assert (store.charges[c.id], store.events, store.ledger) == before


async def test_another_value_is_a_mismatch_and_the_charge_stays_active() -> None:
    store = MemoryStore()
    c = store.add(charge(value=1234))
    p = pix(c.id, value=1233)

    assert await run(store, [p]) == [[Outcome.MISMATCH]]

    assert store.charges[c.id].status is Status.ACTIVE
    assert types(store, c.id) == ["payment.mismatch"]
    assert store.events[0].status == "ACTIVE"
    assert store.events[0].data == {
        "end_to_end_id": p.end_to_end_id,
        "received": "12.33",
        "expected": "12.34",
        "reason": "value_differs",
    }
    assert store.charges[c.id].last_event_id == store.events[0].id
    assert store.ledger[p.end_to_end_id].outcome == "mismatch"
    # the right value afterwards still pays it
    assert await run(store, [pix(c.id)]) == [[Outcome.PAID]]


@pytest.mark.parametrize("txid", ["nosuchcharge0000000000000", None])
async def test_an_unknown_txid_is_recorded_with_no_event(txid: str | None) -> None:
    store = MemoryStore()
    p = pix(txid)

    assert await run(store, [p]) == [[Outcome.UNKNOWN_TXID]]

    assert store.events == []
    recorded = store.ledger[p.end_to_end_id]
    assert (recorded.outcome, recorded.payment_id, recorded.txid) == ("unknown_txid", None, txid)


@pytest.mark.parametrize("final", [Status.PAID, Status.CANCELLED, Status.EXPIRED])
async def test_money_for_a_final_charge_is_a_mismatch(final: Status) -> None:
    store = MemoryStore()
    c = store.add(charge(status=final))
    p = pix(c.id)

    assert await run(store, [p]) == [[Outcome.MISMATCH]]

    assert store.charges[c.id].status is final
    assert types(store, c.id) == ["payment.mismatch"]
    assert store.events[0].data["reason"] == "charge_final"
    assert store.ledger[p.end_to_end_id].outcome == "mismatch"


async def test_a_pix_after_expiry_expires_the_charge_and_is_a_mismatch() -> None:
    store = MemoryStore()
    c = store.add(charge(expires_in=-1))  # past expiry, not swept yet

    assert await run(store, [pix(c.id)]) == [[Outcome.MISMATCH]]

    assert store.charges[c.id].status is Status.EXPIRED
    assert types(store, c.id) == ["payment.expired", "payment.mismatch"]
    assert store.events[1].data["reason"] == "charge_final"
    assert store.charges[c.id].last_event_id == store.events[1].id


async def test_two_pix_for_one_charge_in_one_batch_pay_it_once() -> None:
    store = MemoryStore()
    c = store.add(charge())
    first, second = pix(c.id), pix(c.id)

    assert await run(store, [first], [second]) == [[Outcome.PAID], [Outcome.MISMATCH]]

    assert store.charges[c.id].status is Status.PAID
    assert store.charges[c.id].end_to_end_id == first.end_to_end_id
    assert types(store, c.id) == ["payment.paid", "payment.mismatch"]
    assert store.events[1].data["reason"] == "charge_final"
    assert store.charges[c.id].last_event_id == store.events[1].id
    assert len(store.ledger) == 2


async def test_one_end_to_end_id_twice_in_one_batch_counts_once() -> None:
    store = MemoryStore()
    c = store.add(charge())
    p = pix(c.id)

    outcomes = await run(store, [p], [p], [pix(c.id, value=1, e2e=p.end_to_end_id)])

    assert outcomes == [[Outcome.PAID], [Outcome.DUPLICATE], [Outcome.DUPLICATE]]
    assert list(store.ledger) == [p.end_to_end_id]
    assert types(store, c.id) == ["payment.paid"]


async def test_a_delivery_of_several_pix_gets_one_outcome_each_in_order() -> None:
    store = MemoryStore()
    a, b = store.add(charge()), store.add(charge(value=500))
    delivery = [pix(a.id), pix(b.id, value=1), pix(None), pix(b.id, value=500)]

    outcomes = await run(store, delivery, [pix(a.id)])

    assert outcomes == [
        [Outcome.PAID, Outcome.MISMATCH, Outcome.UNKNOWN_TXID, Outcome.PAID],
        [Outcome.MISMATCH],
    ]
    assert store.charges[a.id].status is store.charges[b.id].status is Status.PAID
    # events in the order the Pix came; ids rising
    assert [(e.payment_id, e.type) for e in store.events] == [
        (a.id, "payment.paid"),
        (b.id, "payment.mismatch"),
        (b.id, "payment.paid"),
        (a.id, "payment.mismatch"),
    ]


async def test_a_batch_is_three_calls_to_the_store_whatever_its_size() -> None:
    store = MemoryStore()
    charges = [store.add(charge()) for _ in range(50)]

    await run(store, *([pix(c.id)] for c in charges))

    assert store.calls == ["lock_charges", "known_end_to_end_ids", "write"]
    assert all(store.charges[c.id].status is Status.PAID for c in charges)


async def test_a_batch_of_duplicates_writes_nothing() -> None:
    store = MemoryStore()
    c = store.add(charge())
    p = pix(c.id)
    await run(store, [p])
    store.calls.clear()

    assert await run(store, [p]) == [[Outcome.DUPLICATE]]
    assert "write" not in store.calls


def test_the_decision_leaves_the_charges_it_was_given_unchanged() -> None:
    given = charge()
    read = copy.copy(given)

    decision = decide([pix(given.id)], {given.id: given}, set(), NOW)

    assert given == read
    assert decision.outcomes == [Outcome.PAID]
    (change,) = decision.writes.changes
    assert (change.payment_id, change.before, change.after) == (
        given.id,
        Status.ACTIVE,
        Status.PAID,
    )
