"""Domain events: plain frozen dataclasses, one per thing that happened to a charge.

They carry no id: the database gives one when the event row commits with its change
(the outbox), and only then is the event published.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "payment.event"
    payment_id: str
    status: str
    at: datetime
    data: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class PaymentCreated(Event):
    type: ClassVar[str] = "payment.created"


@dataclass(frozen=True)
class PaymentPaid(Event):
    type: ClassVar[str] = "payment.paid"


@dataclass(frozen=True)
class PaymentExpired(Event):
    type: ClassVar[str] = "payment.expired"


@dataclass(frozen=True)
class PaymentCancelled(Event):
    type: ClassVar[str] = "payment.cancelled"


@dataclass(frozen=True)
class PaymentMismatch(Event):
    """Money arrived that does not settle the charge; the charge's status is unchanged."""

    type: ClassVar[str] = "payment.mismatch"


FINAL_EVENT_TYPES = frozenset({PaymentPaid.type, PaymentExpired.type, PaymentCancelled.type})


@dataclass(frozen=True)
class RecordedEvent:
    """An event as the outbox holds it: with the id the database gave it.

    The id orders a charge's events and is what clients resume from.
    """

    id: int
    type: str
    payment_id: str
    status: str
    at: datetime
    data: dict[str, object]

    @property
    def is_final(self) -> bool:
        return self.type in FINAL_EVENT_TYPES
