"""In-memory implementations of the service layer's ports, for unit tests.

`MemoryStore` keeps charges, the ledger and the events in dicts and lists, and does what
the port's docstrings say and nothing more: a test against it checks the use case, not
SQL. The real stores are tested against SQLite and PostgreSQL in tests/integration.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from pixlive.domain.charge import Charge
from pixlive.domain.events import RecordedEvent
from pixlive.services.records import ReceivedPix, Writes


@dataclass
class FixedClock:
    at: datetime = datetime(2026, 11, 28, 12, 0, 0, 123000, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


@dataclass
class MemoryStore:
    charges: dict[str, Charge] = field(default_factory=dict)
    ledger: dict[str, ReceivedPix] = field(default_factory=dict)
    events: list[RecordedEvent] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def add(self, charge: Charge) -> Charge:
        self.charges[charge.id] = copy.copy(charge)
        return charge

    async def lock_charges(self, charge_ids: Collection[str]) -> dict[str, Charge]:
        self.calls.append("lock_charges")
        return {i: copy.copy(self.charges[i]) for i in charge_ids if i in self.charges}

    async def known_end_to_end_ids(self, end_to_end_ids: Collection[str]) -> set[str]:
        self.calls.append("known_end_to_end_ids")
        return {e2e for e2e in end_to_end_ids if e2e in self.ledger}

    async def write(self, writes: Writes) -> list[RecordedEvent]:
        self.calls.append("write")
        for pix in writes.ledger:
            assert pix.end_to_end_id not in self.ledger, "the ledger's unique key"
            self.ledger[pix.end_to_end_id] = pix
        recorded = []
        for event in writes.events:
            stored = RecordedEvent(
                id=len(self.events) + 1,
                type=event.type,
                payment_id=event.payment_id,
                status=str(event.status),
                at=event.at,
                data=event.data,
            )
            self.events.append(stored)
            recorded.append(stored)
            self.charges[event.payment_id].last_event_id = stored.id
        for change in writes.changes:
            charge = self.charges[change.payment_id]
            assert charge.status is change.before, "written over the status it was read with"
            self.charges[change.payment_id] = replace(
                charge,
                status=change.after,
                paid_at=change.paid_at,
                end_to_end_id=change.end_to_end_id,
            )
        return recorded
