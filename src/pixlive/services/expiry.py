"""Expiry: ACTIVE charges past their time become EXPIRED, each with one `payment.expired`.

The conditional UPDATE (`WHERE status = 'ACTIVE'`) is the set-wise form of
`Charge.expire`: however many processes sweep at once, each charge changes, and emits its
event, exactly once.
"""

from __future__ import annotations

from datetime import datetime

from pixlive.domain.charge import Status
from pixlive.domain.events import PaymentExpired
from pixlive.services.unit_of_work import UnitOfWork

SWEEP_LIMIT = 500


async def expire_due(uow: UnitOfWork, now: datetime, limit: int = SWEEP_LIMIT) -> int:
    expired = await uow.repo.expire_due(now, limit)
    for charge_id in expired:
        await uow.record(PaymentExpired(payment_id=charge_id, status=Status.EXPIRED, at=now))
    return len(expired)
