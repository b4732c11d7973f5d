"""The charge and its state machine: ACTIVE → PAID | EXPIRED | CANCELLED."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from pixlive.domain import events
from pixlive.domain.errors import ChargeFinal, IllegalTransition
from pixlive.domain.money import format_amount


class Status(StrEnum):
    ACTIVE = "ACTIVE"
    PAID = "PAID"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self is not Status.ACTIVE

    @property
    def api_pix(self) -> str:
        """The status as the API Pix names it (EXPIRED is pixlive's own)."""
        return _API_PIX[self]


_API_PIX = {
    Status.ACTIVE: "ATIVA",
    Status.PAID: "CONCLUIDA",
    Status.CANCELLED: "REMOVIDA_PELO_USUARIO_RECEBEDOR",
    Status.EXPIRED: "EXPIRADA",
}

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.ACTIVE: frozenset({Status.PAID, Status.EXPIRED, Status.CANCELLED}),
    Status.PAID: frozenset(),
    Status.EXPIRED: frozenset(),
    Status.CANCELLED: frozenset(),
}


def check_transition(current: Status, target: Status) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"a charge cannot go from {current} to {target}")


@dataclass(frozen=True)
class Payer:
    name: str | None = None
    cpf: str | None = None
    cnpj: str | None = None


@dataclass
class Charge:
    id: str
    value: int  # centavos
    status: Status
    created_at: datetime
    expires_at: datetime
    brcode: str
    description: str | None = None
    paid_at: datetime | None = None
    end_to_end_id: str | None = None
    payer: Payer | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    last_event_id: int = 0
    # Where the payment page sends the payer back to the merchant's shop, if anywhere.
    return_url: str | None = None

    def status_at(self, now: datetime) -> Status:
        """The status a reader must see: an ACTIVE charge past its expiry is EXPIRED
        even before the sweeper has written it down."""
        if self.status is Status.ACTIVE and now >= self.expires_at:
            return Status.EXPIRED
        return self.status

    def created_event(self) -> events.PaymentCreated:
        return events.PaymentCreated(
            payment_id=self.id,
            status=self.status,
            at=self.created_at,
            data={"value": format_amount(self.value), "expires_at": iso(self.expires_at)},
        )

    def pay(
        self, *, end_to_end_id: str, at: datetime, source: str | None = None
    ) -> events.PaymentPaid:
        """`source` names how the Pix was learnt when it was not the webhook
        ("reconciliation": the GET /pix sweep found it)."""
        check_transition(self.status, Status.PAID)
        self.status = Status.PAID
        self.paid_at = at
        self.end_to_end_id = end_to_end_id
        data: dict[str, object] = {
            "value": format_amount(self.value),
            "end_to_end_id": end_to_end_id,
        }
        if source is not None:
            data["source"] = source
        return events.PaymentPaid(payment_id=self.id, status=self.status, at=at, data=data)

    def expire(self, *, at: datetime) -> events.PaymentExpired:
        check_transition(self.status, Status.EXPIRED)
        self.status = Status.EXPIRED
        return events.PaymentExpired(payment_id=self.id, status=self.status, at=at)

    def cancel(self, *, at: datetime) -> events.PaymentCancelled:
        if self.status.is_final:
            raise ChargeFinal(f"the charge is already {self.status}")
        check_transition(self.status, Status.CANCELLED)
        self.status = Status.CANCELLED
        return events.PaymentCancelled(payment_id=self.id, status=self.status, at=at)

    def mismatch(
        self, *, end_to_end_id: str, received: int, reason: str, at: datetime
    ) -> events.PaymentMismatch:
        return events.PaymentMismatch(
            payment_id=self.id,
            status=self.status,
            at=at,
            data={
                "end_to_end_id": end_to_end_id,
                "received": format_amount(received),
                "expected": format_amount(self.value),
                "reason": reason,
            },
        )


def iso(moment: datetime) -> str:
    """UTC time as the events carry it: 2026-11-28T01:02:03.456Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
