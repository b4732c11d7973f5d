"""Use cases on charges: create and cancel (writes), read and list (queries)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from pixlive.domain.brcode import build_brcode
from pixlive.domain.charge import Charge, Payer, Status
from pixlive.domain.errors import ChargeFinal, ChargeNotFound, IdempotencyConflict
from pixlive.domain.ids import new_charge_id
from pixlive.services.ports import Queries
from pixlive.services.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Receiver:
    """The merchant's Pix account, which every charge's BR Code pays into."""

    pix_key: str
    name: str
    city: str


@dataclass(frozen=True)
class NewCharge:
    value: int
    expires_in: int
    description: str | None = None
    payer: Payer | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    return_url: str | None = None


@dataclass(frozen=True)
class Idempotency:
    api_key_id: int
    key: str
    request_hash: str


async def create_charge(
    uow: UnitOfWork,
    command: NewCharge,
    receiver: Receiver,
    now: datetime,
    idempotency: Idempotency | None = None,
    at_psp: tuple[str, str] | None = None,
) -> tuple[Charge, bool]:
    """The new charge and True; or, for a repeated Idempotency-Key, the first one and False.

    `at_psp` is (txid, BR Code) of the cob the PSP made for it (services/psp_charges.py)."""
    if idempotency is not None:
        seen = await uow.repo.get_idempotency(idempotency.api_key_id, idempotency.key)
        if seen is not None:
            if seen.request_hash != idempotency.request_hash:
                raise IdempotencyConflict(
                    "this Idempotency-Key was already used with a different request"
                )
            charge = await uow.repo.get_charge(seen.payment_id)
            assert charge is not None
            return charge, False
    if at_psp is not None:
        charge_id, brcode = at_psp
    else:
        charge_id = new_charge_id()
        brcode = build_brcode(
            key=receiver.pix_key,
            merchant_name=receiver.name,
            merchant_city=receiver.city,
            txid=charge_id,
            amount_cents=command.value,
        )
    charge = Charge(
        id=charge_id,
        value=command.value,
        status=Status.ACTIVE,
        created_at=now,
        expires_at=now + timedelta(seconds=command.expires_in),
        brcode=brcode,
        description=command.description,
        payer=command.payer,
        metadata=dict(command.metadata),
        return_url=command.return_url,
    )
    await uow.repo.add_charge(charge)
    recorded = await uow.record(charge.created_event())
    charge.last_event_id = recorded.id
    if idempotency is not None:
        await uow.repo.add_idempotency(
            idempotency.api_key_id, idempotency.key, idempotency.request_hash, charge.id, now
        )
    return charge, True


async def cancel_charge(uow: UnitOfWork, charge_id: str, now: datetime) -> Charge:
    charge = await uow.repo.get_charge(charge_id, for_update=True)
    if charge is None:
        raise ChargeNotFound("no charge with this id")
    effective = charge.status_at(now)
    if effective.is_final:
        raise ChargeFinal(f"the charge is already {effective}")
    event = charge.cancel(at=now)
    await uow.repo.save_status(charge, expected=Status.ACTIVE)
    recorded = await uow.record(event)
    charge.last_event_id = recorded.id
    return charge


def as_seen_at(charge: Charge, now: datetime) -> Charge:
    """The charge as a reader must see it: EXPIRED once past expiry, swept or not."""
    effective = charge.status_at(now)
    return charge if effective is charge.status else replace(charge, status=effective)


async def get_charge(queries: Queries, charge_id: str, now: datetime) -> Charge:
    charge = await queries.get_charge(charge_id)
    if charge is None:
        raise ChargeNotFound("no charge with this id")
    return as_seen_at(charge, now)


async def list_charges(
    queries: Queries,
    now: datetime,
    *,
    status: Status | None,
    before: tuple[int, str] | None,
    limit: int,
) -> list[Charge]:
    charges = await queries.list_charges(status=status, before=before, limit=limit, now=now)
    return [as_seen_at(charge, now) for charge in charges]
