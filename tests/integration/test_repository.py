"""The repository's SQL on both databases: what goes in comes back out, in the right order."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from itest import RECEIVER, T0, Stack, at, new_e2e

from pixlive.adapters.repository import to_ms
from pixlive.domain.brcode import build_brcode
from pixlive.domain.charge import Charge, Payer, Status
from pixlive.domain.events import (
    PaymentCancelled,
    PaymentCreated,
    PaymentExpired,
    PaymentMismatch,
    PaymentPaid,
)
from pixlive.domain.ids import new_charge_id
from pixlive.services import api_keys
from pixlive.services.errors import Conflict, DatabaseUnavailable
from pixlive.services.records import ApiKey, ReceivedPix, StatusChange, Writes
from pixlive.services.unit_of_work import UnitOfWork


def a_charge(**fields: object) -> Charge:
    charge_id = new_charge_id()
    charge = Charge(
        id=charge_id,
        value=1234,
        status=Status.ACTIVE,
        created_at=T0,
        expires_at=T0 + timedelta(hours=1),
        brcode=build_brcode(
            key=RECEIVER.pix_key,
            merchant_name=RECEIVER.name,
            merchant_city=RECEIVER.city,
            txid=charge_id,
            amount_cents=1234,
        ),
    )
    return replace(charge, **fields)


async def add(stack: Stack, *charges: Charge) -> None:
    async def job(uow: UnitOfWork) -> None:
        for charge in charges:
            await uow.repo.add_charge(charge)

    await stack.run(job)


# charges ------------------------------------------------------------------------------


async def test_a_charge_comes_back_as_it_went_in(stack: Stack) -> None:
    full = a_charge(
        description="Pedido nº 42 — café ☕",
        payer=Payer(name="José da Silva", cpf="52998224725"),
        metadata={"order": "42", "canal": "loja física"},
    )
    company = a_charge(payer=Payer(name="ACME Ltda", cnpj="11222333000181"))
    bare = a_charge()
    await add(stack, full, company, bare)

    for charge in (full, company, bare):
        assert await stack.read(lambda repo, c=charge: repo.get_charge(c.id)) == charge
    assert await stack.read(lambda repo: repo.get_charge("X" * 25)) is None
    loaded = await stack.read(lambda repo: repo.get_charge(bare.id))
    assert loaded is not None
    assert (loaded.payer, loaded.metadata, loaded.description) == (None, {}, None)
    assert (loaded.paid_at, loaded.end_to_end_id, loaded.last_event_id) == (None, None, 0)


async def test_save_status_writes_only_from_the_expected_status(stack: Stack) -> None:
    charge = a_charge()
    await add(stack, charge)
    paid = replace(charge, status=Status.PAID, paid_at=at(5), end_to_end_id=new_e2e())

    assert await stack.run(lambda uow: uow.repo.save_status(paid, expected=Status.ACTIVE))
    # a second writer that still believes the charge ACTIVE changes nothing
    cancelled = replace(charge, status=Status.CANCELLED)
    assert not await stack.run(lambda uow: uow.repo.save_status(cancelled, expected=Status.ACTIVE))
    assert await stack.read(lambda repo: repo.get_charge(charge.id)) == paid


async def test_events_after_gives_a_charges_events_in_order(stack: Stack) -> None:
    first, second = a_charge(), a_charge()
    await add(stack, first, second)

    async def record(uow: UnitOfWork) -> None:
        for n in range(4):
            for charge in (first, second):
                await uow.record(
                    PaymentMismatch(payment_id=charge.id, status="ACTIVE", at=at(n), data={"n": n})
                )
        await uow.record(PaymentCancelled(payment_id=first.id, status="CANCELLED", at=at(9)))

    await stack.run(record)

    events = await stack.events(first.id)
    assert [e.payment_id for e in events] == [first.id] * 5
    assert [e.data for e in events] == [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}, {}]
    assert [e.type for e in events][-1] == "payment.cancelled"
    assert [e.at for e in events] == [at(0), at(1), at(2), at(3), at(9)]
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 5
    # resuming from an event id gives exactly what came after it
    assert await stack.read(lambda repo: repo.events_after(first.id, ids[1], 100)) == events[2:]
    assert await stack.read(lambda repo: repo.events_after(first.id, ids[1], 2)) == events[2:4]
    assert await stack.read(lambda repo: repo.events_after(first.id, ids[-1], 100)) == []
    # the charge knows its last event; the whole log is in id order too
    loaded = await stack.read(lambda repo: repo.get_charge(first.id))
    assert loaded is not None and loaded.last_event_id == ids[-1]
    everything = await stack.read(lambda repo: repo.all_events_after(0, 100))
    assert len(everything) == 9
    assert [e.id for e in everything] == sorted(e.id for e in everything)
    assert await stack.read(lambda repo: repo.last_event_id()) == everything[-1].id


async def test_list_charges_is_newest_first_and_its_pages_neither_skip_nor_repeat(
    stack: Stack,
) -> None:
    statuses = [Status.ACTIVE, Status.PAID, Status.CANCELLED, Status.EXPIRED]
    charges = [
        # several charges share each millisecond, so the cursor's id has to break the tie
        a_charge(created_at=at(n // 3), expires_at=at(n // 3 + 60), status=statuses[n % 4])
        for n in range(31)
    ]
    await add(stack, *charges)

    everything = await stack.read(
        lambda repo: repo.list_charges(status=None, before=None, limit=1000)
    )
    assert {c.id for c in everything} == {c.id for c in charges}
    keys = [(to_ms(c.created_at), c.id) for c in everything]
    assert keys == sorted(keys, reverse=True)

    # `now` filters by the status readers see: here half the ACTIVE charges are past expiry
    for now in (None, at(65)):
        for status in [None, *statuses]:
            for size in (1, 4, 7):
                pages: list[list[Charge]] = []
                cursor = None
                while True:
                    page = await stack.read(
                        lambda repo, c=cursor, s=status, n=size, t=now: repo.list_charges(
                            status=s, before=c, limit=n, now=t
                        )
                    )
                    assert len(page) <= size
                    if not page:
                        break
                    pages.append(page)
                    cursor = (to_ms(page[-1].created_at), page[-1].id)
                seen = [c.id for page in pages for c in page]
                expected = [
                    c.id
                    for c in everything
                    if status is None or (c.status_at(now) if now else c.status) is status
                ]
                assert seen == expected, (now, status, size)
    lapsed = [c for c in everything if c.status is Status.ACTIVE and c.status_at(at(65)).is_final]
    assert 0 < len(lapsed) < len([c for c in everything if c.status is Status.ACTIVE])


# the confirmation store: set-wise reads and writes of a batch ------------------------


def received_pix(charge: Charge | None, outcome: str, value: int = 1234) -> ReceivedPix:
    e2e = new_e2e()
    raw = {"endToEndId": e2e, "valor": f"{value / 100:.2f}", "horario": "2026-11-28T12:00:00Z"}
    return ReceivedPix(
        end_to_end_id=e2e,
        txid=charge.id if charge is not None else "U" * 25,
        value=value,
        horario=raw["horario"],
        raw=raw,
        outcome=outcome,
        payment_id=charge.id if charge is not None else None,
        received_at=T0,
    )


async def test_the_store_locks_the_charges_and_finds_the_known_end_to_end_ids(
    stack: Stack,
) -> None:
    first, second = a_charge(), a_charge(status=Status.PAID)
    await add(stack, first, second)
    known = received_pix(first, "mismatch", 1)
    await stack.run(lambda uow: uow.repo.write(Writes(ledger=[known])))  # type: ignore[attr-defined]

    async def job(uow: UnitOfWork) -> tuple[dict[str, Charge], set[str]]:
        store = uow.repo
        charges = await store.lock_charges([first.id, second.id, "X" * 25])  # type: ignore[attr-defined]
        found = await store.known_end_to_end_ids([known.end_to_end_id, new_e2e()])  # type: ignore[attr-defined]
        return charges, found

    charges, found = await stack.run(job)

    assert charges == {first.id: first, second.id: second}
    assert found == {known.end_to_end_id}


async def test_the_store_writes_a_batchs_ledger_events_and_status_changes(stack: Stack) -> None:
    paying, missing, expiring = a_charge(), a_charge(), a_charge(expires_at=T0)
    await add(stack, paying, missing, expiring)
    pix = [received_pix(paying, "paid"), received_pix(missing, "mismatch", 1)]
    pix += [received_pix(expiring, "mismatch"), received_pix(None, "unknown_txid")]
    e2e = pix[0].end_to_end_id
    events = [
        PaymentPaid(payment_id=paying.id, status="PAID", at=at(5), data={"value": "12.34"}),
        PaymentMismatch(payment_id=missing.id, status="ACTIVE", at=at(5), data={"n": 1}),
        PaymentExpired(payment_id=expiring.id, status="EXPIRED", at=at(5)),
        PaymentMismatch(payment_id=missing.id, status="ACTIVE", at=at(5), data={"n": 2}),
        PaymentMismatch(payment_id=expiring.id, status="EXPIRED", at=at(5), data={"n": 3}),
    ]
    changes = [
        StatusChange(paying.id, Status.ACTIVE, Status.PAID, paid_at=at(5), end_to_end_id=e2e),
        StatusChange(expiring.id, Status.ACTIVE, Status.EXPIRED),
    ]

    recorded = await stack.run(
        lambda uow: uow.repo.write(Writes(ledger=pix, events=events, changes=changes))  # type: ignore[attr-defined]
    )

    # ids rising in the events' order, as stored
    assert [(e.payment_id, e.type, e.data) for e in recorded] == [
        (e.payment_id, e.type, e.data) for e in events
    ]
    assert [e.id for e in recorded] == sorted(e.id for e in recorded)
    for charge in (paying, missing, expiring):
        assert await stack.events(charge.id) == [e for e in recorded if e.payment_id == charge.id]
    for row in pix:
        assert await stack.received(row.end_to_end_id) == row
    stored = {
        c.id: await stack.read(lambda repo, c=c: repo.get_charge(c.id))
        for c in (paying, missing, expiring)
    }
    assert stored[paying.id] == replace(
        paying, status=Status.PAID, paid_at=at(5), end_to_end_id=e2e, last_event_id=recorded[0].id
    )
    assert stored[missing.id] == replace(missing, last_event_id=recorded[3].id)
    assert stored[expiring.id] == replace(
        expiring, status=Status.EXPIRED, last_event_id=recorded[4].id
    )


async def test_the_store_refuses_an_end_to_end_id_the_ledger_has(stack: Stack) -> None:
    """Another process recorded it after the batch looked: the write fails, and nothing
    of it stays (the writer runs the batch again, and the decision then sees it)."""
    charge = a_charge()
    await add(stack, charge)
    first = received_pix(charge, "mismatch", 1)
    await stack.run(lambda uow: uow.repo.write(Writes(ledger=[first])))  # type: ignore[attr-defined]
    event = PaymentPaid(payment_id=charge.id, status="PAID", at=at(5))
    change = StatusChange(charge.id, Status.ACTIVE, Status.PAID, paid_at=at(5))
    again = Writes(ledger=[replace(first, outcome="paid")], events=[event], changes=[change])

    async def job(uow: UnitOfWork) -> object:
        return await uow.repo.write(again)  # type: ignore[attr-defined]

    # SQLite: the unique key refuses it. PostgreSQL: a conflict to run again, which this
    # job does each time it is run, until the writer gives up (the PSP retries later).
    refused = Conflict if stack.url.startswith("sqlite") else DatabaseUnavailable
    with pytest.raises(refused):
        await stack.run(job)

    assert await stack.read(lambda repo: repo.get_charge(charge.id)) == charge
    assert await stack.events(charge.id) == []
    assert await stack.received(first.end_to_end_id) == first


# idempotency keys -----------------------------------------------------------------------


async def test_idempotency_rows_are_per_api_key(stack: Stack) -> None:
    charge = a_charge()
    await add(stack, charge)
    await stack.run(lambda uow: uow.repo.add_idempotency(1, "key-1", "h" * 64, charge.id, T0))

    record = await stack.read(lambda repo: repo.get_idempotency(1, "key-1"))
    assert record is not None
    assert (record.request_hash, record.payment_id) == ("h" * 64, charge.id)
    assert await stack.read(lambda repo: repo.get_idempotency(2, "key-1")) is None
    assert await stack.read(lambda repo: repo.get_idempotency(1, "key-2")) is None
    with pytest.raises(Conflict):
        await stack.run(lambda uow: uow.repo.add_idempotency(1, "key-1", "x" * 64, charge.id, T0))
    # another key may use the same Idempotency-Key
    await stack.run(lambda uow: uow.repo.add_idempotency(2, "key-1", "x" * 64, charge.id, T0))
    assert await stack.count("idempotency_keys") == 2


# API keys -------------------------------------------------------------------------------


async def test_api_keys_create_find_revoke_and_reuse_the_name(stack: Stack) -> None:
    async def authenticate(key: str) -> ApiKey | None:
        async with stack.db.read() as conn:
            return await api_keys.authenticate(conn, key)

    key = await stack.run(lambda uow: api_keys.create_api_key(uow, "loja", T0))
    other = await stack.run(lambda uow: api_keys.create_api_key(uow, "outra", T0))
    assert key.startswith("pxl_") and key != other

    found = await authenticate(key)
    assert found is not None and found.name == "loja" and found.revoked_at is None
    assert key.startswith(found.prefix)
    assert await authenticate(key + "x") is None
    assert await authenticate("not-a-key") is None
    # the key itself is never stored, only its hash
    assert await stack.count("api_keys", "key_hash = $1", key) == 0

    # one active key per name
    with pytest.raises(Conflict):
        await stack.run(lambda uow: api_keys.create_api_key(uow, "loja", T0))

    assert await stack.run(lambda uow: api_keys.revoke_api_key(uow, "loja", at(1))) is True
    assert await authenticate(key) is None
    assert await authenticate(other) is not None
    assert await stack.run(lambda uow: api_keys.revoke_api_key(uow, "loja", at(2))) is False

    # a revoked key's name may be given to a new key; the old one stays revoked
    again = await stack.run(lambda uow: api_keys.create_api_key(uow, "loja", at(3)))
    found_again = await authenticate(again)
    assert found_again is not None and found_again.name == "loja"
    assert found_again.id != found.id
    assert await authenticate(key) is None

    listed = await stack.read(lambda repo: repo.list_api_keys())
    assert [(k.name, k.revoked_at) for k in listed] == [
        ("loja", at(1)),
        ("outra", None),
        ("loja", None),
    ]


async def test_a_created_event_round_trips_with_its_data(stack: Stack) -> None:
    charge = a_charge()
    await add(stack, charge)
    event = PaymentCreated(
        payment_id=charge.id, status="ACTIVE", at=T0, data={"value": "12.34", "nested": [1, "ç"]}
    )
    recorded = await stack.run(lambda uow: uow.record(event))
    assert recorded.id > 0
    assert await stack.events(charge.id) == [recorded]
