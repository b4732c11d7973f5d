"""The use cases, through the group-commit writer, on both databases, checked as a user
would: what the database holds afterwards and what was published."""

from __future__ import annotations

import pytest
from itest import RECEIVER, T0, Stack, at, new_e2e, pix_for

from pixlive.domain.brcode import parse_tlv, verify_crc
from pixlive.domain.charge import Payer, Status
from pixlive.domain.errors import ChargeFinal, ChargeNotFound, IdempotencyConflict
from pixlive.domain.ids import is_charge_id
from pixlive.services import charges as service
from pixlive.services.charges import Idempotency, NewCharge, create_charge
from pixlive.services.confirmation import Outcome
from pixlive.services.expiry import expire_due
from pixlive.services.records import ReceivedPix


async def snapshot(stack: Stack) -> tuple[int, ...]:
    return (
        await stack.count("charges"),
        await stack.count("events"),
        await stack.count("received_pix"),
        await stack.count("idempotency_keys"),
    )


async def test_create_charge(stack: Stack) -> None:
    command = NewCharge(
        value=123456,
        expires_in=600,
        description="Pedido 42",
        payer=Payer(name="Maria", cpf="52998224725"),
        metadata={"order": "42"},
    )
    charge, created = await stack.run(lambda uow: create_charge(uow, command, RECEIVER, T0))

    assert created is True
    assert is_charge_id(charge.id)
    assert charge.status is Status.ACTIVE
    assert charge.expires_at == at(600)
    # the BR Code pays this charge: its txid is the charge id, its amount the value
    fields = parse_tlv(charge.brcode)
    assert fields["54"] == "1234.56"
    assert parse_tlv(fields["62"]) == {"05": charge.id}
    assert parse_tlv(fields["26"])["01"] == RECEIVER.pix_key
    assert fields["01"] == "12"
    assert verify_crc(charge.brcode)

    # what the database holds is what the caller got
    assert await stack.read(lambda repo: repo.get_charge(charge.id)) == charge
    events = await stack.events(charge.id)
    assert [(e.type, e.status) for e in events] == [("payment.created", "ACTIVE")]
    assert events[0].data["value"] == "1234.56"
    assert charge.last_event_id == events[0].id
    # published once, after the commit, with the id the database gave it
    assert stack.published == events


async def test_the_same_idempotency_key_and_body_give_the_same_charge(stack: Stack) -> None:
    command = NewCharge(value=500, expires_in=600)
    key = Idempotency(api_key_id=1, key="order-42", request_hash="a" * 64)

    first, created = await stack.run(lambda uow: create_charge(uow, command, RECEIVER, T0, key))
    assert created is True
    before = await snapshot(stack)
    published = list(stack.published)

    again, created_again = await stack.run(
        lambda uow: create_charge(uow, command, RECEIVER, at(5), key)
    )
    assert created_again is False
    assert again == first
    assert await snapshot(stack) == before
    assert stack.published == published

    other = Idempotency(api_key_id=1, key="order-42", request_hash="b" * 64)
    with pytest.raises(IdempotencyConflict):
        await stack.run(
            lambda uow: create_charge(
                uow, NewCharge(value=501, expires_in=600), RECEIVER, T0, other
            )
        )
    assert await snapshot(stack) == before
    assert stack.published == published

    # the key belongs to the API key that used it; another merchant key starts afresh
    theirs = Idempotency(api_key_id=2, key="order-42", request_hash="a" * 64)
    fresh, created_fresh = await stack.run(
        lambda uow: create_charge(uow, command, RECEIVER, T0, theirs)
    )
    assert created_fresh is True and fresh.id != first.id


async def test_cancel(stack: Stack) -> None:
    charge = await stack.new_charge()
    published = len(stack.published)

    cancelled = await stack.run(lambda uow: service.cancel_charge(uow, charge.id, at(10)))

    assert cancelled.status is Status.CANCELLED
    stored = await stack.read(lambda repo: repo.get_charge(charge.id))
    assert stored is not None and stored.status is Status.CANCELLED
    events = await stack.events(charge.id)
    assert [e.type for e in events] == ["payment.created", "payment.cancelled"]
    assert stored.last_event_id == cancelled.last_event_id == events[-1].id
    assert stack.published[published:] == events[1:]

    with pytest.raises(ChargeFinal):
        await stack.run(lambda uow: service.cancel_charge(uow, charge.id, at(20)))
    assert len(await stack.events(charge.id)) == 2
    assert len(stack.published) == published + 1

    with pytest.raises(ChargeNotFound):
        await stack.run(lambda uow: service.cancel_charge(uow, "Z" * 25, at(20)))


async def test_cancel_an_expired_charge_the_sweeper_has_not_reached(stack: Stack) -> None:
    charge = await stack.new_charge(expires_in=60)
    before = await snapshot(stack)

    with pytest.raises(ChargeFinal):
        await stack.run(lambda uow: service.cancel_charge(uow, charge.id, at(61)))

    assert await snapshot(stack) == before
    stored = await stack.read(lambda repo: repo.get_charge(charge.id))
    assert stored is not None and stored.status is Status.ACTIVE  # left to the sweeper
    # readers see it expired all the same
    async with stack.db.read() as conn:
        assert (await service.get_charge(conn, charge.id, at(61))).status is Status.EXPIRED
        listed = await service.list_charges(conn, at(61), status=None, before=None, limit=10)
    assert [c.status for c in listed] == [Status.EXPIRED]


# confirmation ---------------------------------------------------------------------------


async def ledger_row(stack: Stack, e2e: str) -> ReceivedPix | None:
    return await stack.received(e2e)


async def test_a_pix_of_the_right_value_pays_the_charge(stack: Stack) -> None:
    charge = await stack.new_charge(1234)
    pix = pix_for(charge.id, 1234, when=at(30))

    assert await stack.confirm(pix, at(31)) is Outcome.PAID

    stored = await stack.read(lambda repo: repo.get_charge(charge.id))
    assert stored is not None
    assert (stored.status, stored.end_to_end_id, stored.paid_at) == (
        Status.PAID,
        pix.end_to_end_id,
        at(30),
    )
    events = await stack.events(charge.id)
    assert [e.type for e in events] == ["payment.created", "payment.paid"]
    assert events[-1].status == "PAID"
    assert events[-1].data == {"value": "12.34", "end_to_end_id": pix.end_to_end_id}
    assert stored.last_event_id == events[-1].id
    assert stack.published[-1] == events[-1]
    row = await ledger_row(stack, pix.end_to_end_id)
    assert row is not None
    assert (row.outcome, row.payment_id, row.value, row.txid) == (
        "paid",
        charge.id,
        1234,
        charge.id,
    )
    assert row.raw == pix.raw


async def test_the_same_end_to_end_id_again_changes_nothing(stack: Stack) -> None:
    charge = await stack.new_charge(1234)
    pix = pix_for(charge.id, 1234)
    assert await stack.confirm(pix) is Outcome.PAID
    before = await snapshot(stack)
    published = list(stack.published)
    stored = await stack.read(lambda repo: repo.get_charge(charge.id))

    for now in (at(1), at(7200)):  # a retry, even one after the charge's expiry
        assert await stack.confirm(pix, now) is Outcome.DUPLICATE

    assert await snapshot(stack) == before
    assert stack.published == published
    assert await stack.read(lambda repo: repo.get_charge(charge.id)) == stored


async def test_a_duplicate_of_a_mismatch_is_a_duplicate(stack: Stack) -> None:
    charge = await stack.new_charge(1234)
    pix = pix_for(charge.id, 999)
    assert await stack.confirm(pix) is Outcome.MISMATCH
    before = await snapshot(stack)

    assert await stack.confirm(pix) is Outcome.DUPLICATE
    assert await snapshot(stack) == before


async def test_another_value_is_a_mismatch_and_leaves_the_charge_active(stack: Stack) -> None:
    charge = await stack.new_charge(1234)
    pix = pix_for(charge.id, 1233)

    assert await stack.confirm(pix, at(5)) is Outcome.MISMATCH

    stored = await stack.read(lambda repo: repo.get_charge(charge.id))
    assert stored is not None and stored.status is Status.ACTIVE and stored.paid_at is None
    events = await stack.events(charge.id)
    assert [e.type for e in events] == ["payment.created", "payment.mismatch"]
    assert events[-1].status == "ACTIVE"
    assert events[-1].data == {
        "end_to_end_id": pix.end_to_end_id,
        "received": "12.33",
        "expected": "12.34",
        "reason": "value_differs",
    }
    assert stack.published[-1] == events[-1]
    row = await ledger_row(stack, pix.end_to_end_id)
    assert row is not None and (row.outcome, row.payment_id) == ("mismatch", charge.id)

    # the charge can still be paid with the right value
    assert await stack.confirm(pix_for(charge.id, 1234), at(6)) is Outcome.PAID


@pytest.mark.parametrize("txid", ["Q" * 25, "L" * 35, None])
async def test_an_unknown_txid_is_recorded_without_an_event(stack: Stack, txid: str | None) -> None:
    before_events = await stack.count("events")
    pix = pix_for(txid, 1234)

    assert await stack.confirm(pix) is Outcome.UNKNOWN_TXID

    assert await stack.count("events") == before_events
    assert stack.published == []
    row = await ledger_row(stack, pix.end_to_end_id)
    assert row is not None
    assert (row.outcome, row.payment_id, row.txid, row.value) == ("unknown_txid", None, txid, 1234)
    assert await stack.confirm(pix) is Outcome.DUPLICATE


@pytest.mark.parametrize("final", ["paid", "cancelled"])
async def test_money_for_a_final_charge_is_a_mismatch(stack: Stack, final: str) -> None:
    charge = await stack.new_charge(1234)
    if final == "paid":
        assert await stack.confirm(pix_for(charge.id, 1234)) is Outcome.PAID
    else:
        await stack.run(lambda uow: service.cancel_charge(uow, charge.id, at(1)))
    stored = await stack.read(lambda repo: repo.get_charge(charge.id))

    late = pix_for(charge.id, 1234)
    assert await stack.confirm(late, at(2)) is Outcome.MISMATCH

    after = await stack.read(lambda repo: repo.get_charge(charge.id))
    assert after is not None and stored is not None
    assert (after.status, after.paid_at, after.end_to_end_id) == (
        stored.status,
        stored.paid_at,
        stored.end_to_end_id,
    )
    events = await stack.events(charge.id)
    assert events[-1].type == "payment.mismatch"
    assert events[-1].status == stored.status.value
    assert events[-1].data["reason"] == "charge_final"
    assert after.last_event_id == events[-1].id
    assert len([e for e in events if e.is_final]) == 1
    row = await ledger_row(stack, late.end_to_end_id)
    assert row is not None and (row.outcome, row.payment_id) == ("mismatch", charge.id)


async def test_a_pix_after_expiry_expires_the_charge_and_is_a_mismatch(stack: Stack) -> None:
    charge = await stack.new_charge(1234, expires_in=60)
    pix = pix_for(charge.id, 1234, when=at(61))

    assert await stack.confirm(pix, at(61)) is Outcome.MISMATCH

    stored = await stack.read(lambda repo: repo.get_charge(charge.id))
    assert stored is not None
    assert (stored.status, stored.paid_at, stored.end_to_end_id) == (Status.EXPIRED, None, None)
    events = await stack.events(charge.id)
    assert [(e.type, e.status) for e in events] == [
        ("payment.created", "ACTIVE"),
        ("payment.expired", "EXPIRED"),
        ("payment.mismatch", "EXPIRED"),
    ]
    assert events[-1].data["reason"] == "charge_final"
    assert stack.published[-2:] == events[-2:]
    # the sweeper finds nothing left to expire
    assert await stack.run(lambda uow: expire_due(uow, at(120))) == 0
    assert len(await stack.events(charge.id)) == 3


async def test_every_pix_lands_in_the_ledger_exactly_once(stack: Stack) -> None:
    active = await stack.new_charge(1000)
    other = await stack.new_charge(2000)
    expiring = await stack.new_charge(3000, expires_in=10)
    cancelled = await stack.new_charge(4000)
    await stack.run(lambda uow: service.cancel_charge(uow, cancelled.id, at(1)))

    deliveries = [
        (pix_for(active.id, 1000), Outcome.PAID),
        (pix_for(active.id, 1000), Outcome.MISMATCH),  # paid twice: the money is on the books
        (pix_for(other.id, 1), Outcome.MISMATCH),
        (pix_for(expiring.id, 3000), Outcome.MISMATCH),
        (pix_for(cancelled.id, 4000), Outcome.MISMATCH),
        (pix_for("N" * 25, 5000), Outcome.UNKNOWN_TXID),
        (pix_for(None, 6000), Outcome.UNKNOWN_TXID),
    ]
    for pix, expected in deliveries:
        assert await stack.confirm(pix, at(20)) is expected
    for pix, _ in deliveries:  # the PSP retries everything
        assert await stack.confirm(pix, at(30)) is Outcome.DUPLICATE

    assert await stack.count("received_pix") == len(deliveries)
    total = await stack.scalar("SELECT SUM(value) FROM received_pix")
    assert int(total) == sum(pix.value for pix, _ in deliveries)
    for pix, expected in deliveries:
        row = await ledger_row(stack, pix.end_to_end_id)
        assert row is not None and row.outcome == expected.value
        assert row.value == pix.value


# expiry ---------------------------------------------------------------------------------


async def test_expire_due_expires_only_due_active_charges_once(stack: Stack) -> None:
    due = [await stack.new_charge(expires_in=60) for _ in range(3)]
    not_yet = [await stack.new_charge(expires_in=600) for _ in range(2)]
    paid = await stack.new_charge(1234, expires_in=60)
    assert await stack.confirm(pix_for(paid.id, 1234), at(10)) is Outcome.PAID
    cancelled = await stack.new_charge(expires_in=60)
    await stack.run(lambda uow: service.cancel_charge(uow, cancelled.id, at(10)))
    published = len(stack.published)

    assert await stack.run(lambda uow: expire_due(uow, at(59))) == 0
    assert await stack.run(lambda uow: expire_due(uow, at(60), limit=2)) == 2
    assert await stack.run(lambda uow: expire_due(uow, at(60))) == 1
    assert await stack.run(lambda uow: expire_due(uow, at(61))) == 0

    for charge in due:
        stored = await stack.read(lambda repo, c=charge: repo.get_charge(c.id))
        assert stored is not None and stored.status is Status.EXPIRED
        events = await stack.events(charge.id)
        assert [(e.type, e.status) for e in events] == [
            ("payment.created", "ACTIVE"),
            ("payment.expired", "EXPIRED"),
        ]
        assert stored.last_event_id == events[-1].id
    for charge, status in [*((c, Status.ACTIVE) for c in not_yet), (paid, Status.PAID)]:
        stored = await stack.read(lambda repo, c=charge: repo.get_charge(c.id))
        assert stored is not None and stored.status is status
    stored = await stack.read(lambda repo: repo.get_charge(cancelled.id))
    assert stored is not None and stored.status is Status.CANCELLED
    expired_events = [e for e in stack.published[published:] if e.type == "payment.expired"]
    assert sorted(e.payment_id for e in expired_events) == sorted(c.id for c in due)
    assert len(stack.published) == published + 3

    # a Pix for an expired charge is now a mismatch, with no second expiry
    late = pix_for(due[0].id, 1234)
    assert await stack.confirm(late, at(70)) is Outcome.MISMATCH
    assert [e.type for e in await stack.events(due[0].id)][-2:] == [
        "payment.expired",
        "payment.mismatch",
    ]


async def test_a_reader_and_the_ledger_agree_on_end_to_end_ids(stack: Stack) -> None:
    """endToEndIds are looked up exactly: one differing in case is another Pix."""
    charge = await stack.new_charge(1234)
    e2e = new_e2e()
    assert await stack.confirm(pix_for(charge.id, 1234, e2e=e2e)) is Outcome.PAID
    swapped = e2e[0] + e2e[1:].swapcase()
    assert await stack.confirm(pix_for(charge.id, 1234, e2e=swapped)) is Outcome.MISMATCH
    assert await stack.count("received_pix") == 2


async def test_listing_by_status_agrees_with_the_status_shown(stack: Stack) -> None:
    """A charge past its expiry that the sweeper has not reached yet is shown EXPIRED, so
    it is listed under EXPIRED, not under ACTIVE."""
    lapsed = await stack.new_charge(100, expires_in=60)
    live = await stack.new_charge(200, expires_in=600, now=at(1))
    swept = await stack.new_charge(300, expires_in=10, now=at(2))
    assert await stack.run(lambda uow: expire_due(uow, at(30))) == 1  # only `swept`

    async def listed(status: Status | None, now_s: float) -> list[tuple[str, Status]]:
        async with stack.db.read() as conn:
            found = await service.list_charges(
                conn, at(now_s), status=status, before=None, limit=100
            )
        return [(c.id, c.status) for c in found]

    now_s = 61  # `lapsed` is due, unswept
    assert await listed(None, now_s) == [
        (swept.id, Status.EXPIRED),
        (live.id, Status.ACTIVE),
        (lapsed.id, Status.EXPIRED),
    ]
    for status in Status:
        everything = await listed(None, now_s)
        assert await listed(status, now_s) == [(i, s) for i, s in everything if s is status]
    # a moment before its expiry, it is still ACTIVE in every view
    assert (lapsed.id, Status.ACTIVE) in await listed(Status.ACTIVE, 59.999)
    assert lapsed.id not in [i for i, _ in await listed(Status.EXPIRED, 59.999)]
