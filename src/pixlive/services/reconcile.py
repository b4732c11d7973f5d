"""Reconciliation: a Pix is never lost because a webhook was.

`GET /pix` is read page by page over a window and every Pix goes through the same
confirmation use case as the webhook's (services/confirmation.py): the ledger's endToEndId
makes it idempotent, so what a webhook already brought comes back `duplicate` and changes
nothing, and a charge whose webhook never came turns PAID with the same `payment.paid`
event, its data saying `"source": "reconciliation"`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pixlive import metrics
from pixlive.services.confirmation import IncomingPix, Outcome
from pixlive.services.psp_port import Psp

SOURCE = "reconciliation"
Confirm = Callable[[list[IncomingPix]], Awaitable[list[Outcome]]]


@dataclass
class Sweep:
    start: datetime
    end: datetime
    pages: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def seen(self) -> int:
        return sum(self.outcomes.values())

    @property
    def found(self) -> int:
        """Pix that no webhook had brought (everything but what the ledger already held)."""
        return self.seen - self.outcomes[Outcome.DUPLICATE.value]


async def reconcile(psp: Psp, confirm: Confirm, start: datetime, end: datetime) -> Sweep:
    """Sweeps [start, end]; one confirmation use case (one group commit) per page."""
    sweep = Sweep(start, end)
    began = time.perf_counter()
    page = 0
    while True:
        listed = await psp.list_pix(start, end, page)
        sweep.pages += 1
        incoming = [
            IncomingPix(
                end_to_end_id=pix.end_to_end_id,
                txid=pix.txid,
                value=pix.value,
                horario=pix.horario,
                raw=pix.raw,
                source=SOURCE,
            )
            for pix in listed.items
        ]
        if incoming:
            for outcome in await confirm(incoming):
                sweep.outcomes[outcome.value] += 1
        page += 1
        if page >= listed.pages or not listed.items:
            break
    sweep.seconds = time.perf_counter() - began
    metrics.reconcile_found.inc(sweep.found)
    return sweep


def window(
    last_end: datetime | None, now: datetime, overlap: timedelta, first: timedelta
) -> tuple[datetime, datetime]:
    """The next sweep's window: from a little before where the last one ended (a Pix can be
    listed late, with an earlier horario) to now; the first sweep of a process looks back
    `first`."""
    start = (last_end - overlap) if last_end is not None else (now - first)
    return start, now
