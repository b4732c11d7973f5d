"""Confirming a Pix the PSP reports: the ledger first, then what it means for the charge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pixlive.adapters.repository import ReceivedPix
from pixlive.domain.charge import Status
from pixlive.domain.events import Event
from pixlive.services.unit_of_work import UnitOfWork


class Outcome(StrEnum):
    PAID = "paid"
    DUPLICATE = "duplicate"
    MISMATCH = "mismatch"
    UNKNOWN_TXID = "unknown_txid"


@dataclass(frozen=True)
class IncomingPix:
    end_to_end_id: str
    txid: str | None
    value: int
    horario: datetime
    raw: dict[str, Any]
    source: str | None = None  # None: the webhook; "reconciliation": the GET /pix sweep


async def confirm_pix(uow: UnitOfWork, pix: IncomingPix, now: datetime) -> Outcome:
    """Records the Pix once by endToEndId, whatever else happens; pays the charge only when
    it is ACTIVE (and not past expiry) and the value is exactly its value."""
    charge = await uow.repo.get_charge(pix.txid, for_update=True) if pix.txid else None
    events: list[Event] = []
    before = charge.status if charge is not None else None
    if charge is None:
        outcome = Outcome.UNKNOWN_TXID
    else:
        if charge.status_at(now) is Status.EXPIRED and charge.status is Status.ACTIVE:
            events.append(charge.expire(at=now))
        if charge.status is Status.ACTIVE and pix.value == charge.value:
            outcome = Outcome.PAID
            events.append(
                charge.pay(end_to_end_id=pix.end_to_end_id, at=pix.horario, source=pix.source)
            )
        else:
            outcome = Outcome.MISMATCH
            reason = "value_differs" if charge.status is Status.ACTIVE else "charge_final"
            events.append(
                charge.mismatch(
                    end_to_end_id=pix.end_to_end_id, received=pix.value, reason=reason, at=now
                )
            )
    # The ledger's unique key is the arbiter of "once": a retried delivery stops here
    # and changes nothing else.
    recorded = await uow.repo.record_pix(
        ReceivedPix(
            end_to_end_id=pix.end_to_end_id,
            txid=pix.txid,
            value=pix.value,
            horario=pix.raw.get("horario", ""),
            raw=pix.raw,
            outcome=outcome.value,
            payment_id=charge.id if charge is not None else None,
            received_at=now,
        ),
        charge,
        replaces=before if charge is not None and charge.status is not before else None,
        events=events,
    )
    if recorded is None:
        return Outcome.DUPLICATE
    uow.add_recorded(recorded)
    return outcome
