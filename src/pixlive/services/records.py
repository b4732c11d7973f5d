"""The records the service layer's ports carry: what came in, what the books hold.

Plain frozen dataclasses, owned here so that the adapters (which store them) depend on the
services, never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pixlive.domain.charge import Status
from pixlive.domain.errors import DomainError
from pixlive.domain.events import Event, RecordedEvent

R = TypeVar("R")


class Outcome(StrEnum):
    """What one Pix did, as the webhook answers it to the PSP."""

    PAID = "paid"
    DUPLICATE = "duplicate"
    MISMATCH = "mismatch"
    UNKNOWN_TXID = "unknown_txid"


@dataclass(frozen=True)
class IncomingPix:
    """One Pix as the PSP reported it (parsed and checked by the entry point)."""

    end_to_end_id: str
    txid: str | None
    value: int  # centavos
    horario: datetime
    raw: dict[str, Any]
    source: str | None = None  # None: the webhook; "reconciliation": the GET /pix sweep


@dataclass(frozen=True)
class ReceivedPix:
    """One Pix as the ledger holds it: recorded once per endToEndId, whatever followed."""

    end_to_end_id: str
    txid: str | None
    value: int
    horario: str
    raw: dict[str, Any]
    outcome: str
    payment_id: str | None
    received_at: datetime


@dataclass(frozen=True)
class StatusChange:
    """A charge's new status columns, written over the status it had when the batch read it
    (the store holds the charge locked from that read to the commit)."""

    payment_id: str
    before: Status
    after: Status
    paid_at: datetime | None = None
    end_to_end_id: str | None = None


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class IdempotencyRecord:
    request_hash: str
    payment_id: str


@dataclass(frozen=True)
class Writes:
    """What a batch decided to write, in order: ledger rows, events, status changes.

    The store gives the events their ids in this order, and sets each charge's
    `last_event_id` to the id of the last of its events here.
    """

    ledger: Sequence[ReceivedPix] = ()
    events: Sequence[Event] = ()
    changes: Sequence[StatusChange] = ()


@dataclass(frozen=True)
class Done(Generic[R]):
    """What a use case over a batch answers: one result per item, in the items' order (a
    `DomainError` for an item refused, which its caller gets raised), and the events the
    batch recorded, with their ids, for the writer to publish once they are committed."""

    results: Sequence[R | DomainError]
    events: Sequence[RecordedEvent] = ()
