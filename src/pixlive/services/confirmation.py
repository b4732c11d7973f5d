"""Confirming the Pix the PSP reports: the money rules, in one place.

`decide` is the whole of them, a pure function: given the Pix of a batch, the charges they
name (as locked), the endToEndIds the ledger already holds, and the time, it says what
each Pix did and what to write. `confirm` is the use case the writer runs over a batch of
deliveries: read through the store, decide, write through the store.

The rules (DESIGN.md):
- Every Pix is recorded in the ledger once per endToEndId, whatever else happens: a
  retried delivery, or the same endToEndId twice in one batch, is DUPLICATE and changes
  nothing else.
- txid of an ACTIVE charge, same value: the charge is PAID (`payment.paid`).
- another value, or a charge already final: MISMATCH (`payment.mismatch`), the charge's
  status unchanged. An ACTIVE charge past its expiry is first EXPIRED
  (`payment.expired`), then the Pix is a mismatch.
- a txid no charge has (or none): UNKNOWN_TXID, recorded, no event.
- Pix of one batch are decided in their order: the second of two Pix for one charge
  sees it as the first left it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime

from pixlive.domain.charge import Charge, Status
from pixlive.domain.events import Event
from pixlive.services.ports import ConfirmationStore
from pixlive.services.records import (
    Done,
    IncomingPix,
    Outcome,
    ReceivedPix,
    StatusChange,
    Writes,
)

__all__ = ["Decision", "IncomingPix", "Outcome", "confirm", "decide"]


@dataclass(frozen=True)
class Decision:
    outcomes: list[Outcome]  # one per Pix, in their order
    writes: Writes


def decide(
    received: Sequence[IncomingPix],
    charges: Mapping[str, Charge],
    known: Set[str],
    now: datetime,
) -> Decision:
    """What these Pix do, in order, to these charges (unchanged: the decision works on
    copies), given the endToEndIds already in the ledger."""
    current: dict[str, Charge] = {}
    seen = set(known)
    outcomes: list[Outcome] = []
    ledger: list[ReceivedPix] = []
    events: list[Event] = []
    for pix in received:
        if pix.end_to_end_id in seen:
            outcomes.append(Outcome.DUPLICATE)
            continue
        seen.add(pix.end_to_end_id)
        charge = _charge(pix.txid, charges, current)
        if charge is None:
            outcome = Outcome.UNKNOWN_TXID
        else:
            if charge.status is Status.ACTIVE and charge.status_at(now) is Status.EXPIRED:
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
        outcomes.append(outcome)
        ledger.append(
            ReceivedPix(
                end_to_end_id=pix.end_to_end_id,
                txid=pix.txid,
                value=pix.value,
                horario=str(pix.raw.get("horario", "")),
                raw=pix.raw,
                outcome=outcome.value,
                payment_id=charge.id if charge is not None else None,
                received_at=now,
            )
        )
    changes = [
        StatusChange(
            payment_id=charge.id,
            before=charges[charge.id].status,
            after=charge.status,
            paid_at=charge.paid_at,
            end_to_end_id=charge.end_to_end_id,
        )
        for charge in current.values()
        if charge.status is not charges[charge.id].status
    ]
    return Decision(outcomes, Writes(ledger=ledger, events=events, changes=changes))


def _charge(
    txid: str | None, charges: Mapping[str, Charge], current: dict[str, Charge]
) -> Charge | None:
    """The batch's own copy of the charge, made on first use."""
    if txid is None:
        return None
    charge = current.get(txid)
    if charge is None:
        original = charges.get(txid)
        if original is None:
            return None
        charge = current[txid] = copy.copy(original)
    return charge


async def confirm(
    store: ConfirmationStore, deliveries: Sequence[Sequence[IncomingPix]], now: datetime
) -> Done[list[Outcome]]:
    """The use case over a batch of webhook deliveries: one list of outcomes per delivery.

    Three calls to the store, whatever the batch's size: lock its charges, find which of
    its endToEndIds the ledger holds, write what `decide` says."""
    received = [pix for delivery in deliveries for pix in delivery]
    txids = {pix.txid for pix in received if pix.txid is not None}
    charges = await store.lock_charges(txids) if txids else {}
    known = await store.known_end_to_end_ids({pix.end_to_end_id for pix in received})
    decision = decide(received, charges, known, now)
    writes = decision.writes
    recorded = await store.write(writes) if writes.ledger else []
    results: list[list[Outcome]] = []
    at = 0
    for delivery in deliveries:
        results.append(decision.outcomes[at : at + len(delivery)])
        at += len(delivery)
    return Done(results, recorded)
