"""The charge's state machine: ACTIVE → PAID | EXPIRED | CANCELLED, and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import product

import pytest

from pixlive.domain import events
from pixlive.domain.charge import TRANSITIONS, Charge, Status, check_transition, iso
from pixlive.domain.errors import ChargeFinal, DomainError, IllegalTransition

T0 = datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=UTC)
E2E = "E" + "1234567890abcdefABCDEF123456789"
LEGAL = {
    (Status.ACTIVE, Status.PAID),
    (Status.ACTIVE, Status.EXPIRED),
    (Status.ACTIVE, Status.CANCELLED),
}


def make_charge(status: Status = Status.ACTIVE, value: int = 1234) -> Charge:
    return Charge(
        id="A" * 25,
        value=value,
        status=status,
        created_at=T0,
        expires_at=T0 + timedelta(minutes=15),
        brcode="000201",
    )


Action = Callable[[Charge], events.Event]
ACTIONS: dict[Status, Action] = {
    Status.PAID: lambda c: c.pay(end_to_end_id=E2E, at=T0),
    Status.EXPIRED: lambda c: c.expire(at=T0),
    Status.CANCELLED: lambda c: c.cancel(at=T0),
}


def test_transition_table_is_exactly_the_legal_set() -> None:
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == LEGAL
    assert set(TRANSITIONS) == set(Status)


@pytest.mark.parametrize(("current", "target"), list(product(Status, Status)))
def test_check_transition(current: Status, target: Status) -> None:
    if (current, target) in LEGAL:
        check_transition(current, target)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(current, target)


@pytest.mark.parametrize("status", list(Status))
def test_only_active_is_not_final(status: Status) -> None:
    assert status.is_final is (status is not Status.ACTIVE)


@pytest.mark.parametrize(("current", "target"), list(product(Status, ACTIONS)))
def test_every_method_follows_the_table(current: Status, target: Status) -> None:
    charge = make_charge(current)
    if (current, target) in LEGAL:
        event = ACTIONS[target](charge)
        assert charge.status is target
        assert event.status == target
        assert event.payment_id == charge.id
        assert event.at == T0
        return
    # Cancelling a final charge is the one refusal the merchant API reports as 409
    # "already final"; the other illegal moves are IllegalTransition.
    expected = ChargeFinal if target is Status.CANCELLED else IllegalTransition
    with pytest.raises(expected) as caught:
        ACTIONS[target](charge)
    assert isinstance(caught.value, DomainError)
    assert charge.status is current, "a refused transition must leave the charge unchanged"
    assert charge.paid_at is None and charge.end_to_end_id is None


def test_pay_records_the_payment_and_returns_payment_paid() -> None:
    charge = make_charge(value=123456)
    paid_at = T0 + timedelta(minutes=1)
    event = charge.pay(end_to_end_id=E2E, at=paid_at)
    assert charge.status is Status.PAID
    assert charge.paid_at == paid_at
    assert charge.end_to_end_id == E2E
    assert isinstance(event, events.PaymentPaid)
    assert event.type == "payment.paid"
    assert event.status == "PAID"
    assert event.at == paid_at
    assert event.data == {"value": "1234.56", "end_to_end_id": E2E}


def test_a_charge_is_paid_only_once() -> None:
    charge = make_charge()
    charge.pay(end_to_end_id=E2E, at=T0)
    with pytest.raises(IllegalTransition):
        charge.pay(end_to_end_id="E" + "9" * 31, at=T0)
    assert charge.end_to_end_id == E2E


def test_expire_and_cancel_return_their_events() -> None:
    expired = make_charge().expire(at=T0)
    assert isinstance(expired, events.PaymentExpired)
    assert (expired.type, expired.status) == ("payment.expired", "EXPIRED")
    cancelled = make_charge().cancel(at=T0)
    assert isinstance(cancelled, events.PaymentCancelled)
    assert (cancelled.type, cancelled.status) == ("payment.cancelled", "CANCELLED")
    for event in (expired, cancelled):
        assert event.type in events.FINAL_EVENT_TYPES


def test_created_event_and_mismatch() -> None:
    charge = make_charge(value=5)
    created = charge.created_event()
    assert created.type == "payment.created"
    assert created.status == "ACTIVE"
    assert created.data == {"value": "0.05", "expires_at": "2026-11-28T01:17:03.456Z"}

    mismatch = charge.mismatch(end_to_end_id=E2E, received=4, reason="value", at=T0)
    assert mismatch.type == "payment.mismatch"
    assert mismatch.type not in events.FINAL_EVENT_TYPES
    assert charge.status is Status.ACTIVE, "a mismatch changes nothing"
    assert mismatch.data == {
        "end_to_end_id": E2E,
        "received": "0.04",
        "expected": "0.05",
        "reason": "value",
    }


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(0), Status.ACTIVE),
        (timedelta(minutes=14, seconds=59, microseconds=999_999), Status.ACTIVE),
        (timedelta(minutes=15), Status.EXPIRED),
        (timedelta(days=3), Status.EXPIRED),
    ],
)
def test_status_at_expires_an_active_charge(offset: timedelta, expected: Status) -> None:
    charge = make_charge()
    assert charge.status_at(T0 + offset) is expected
    assert charge.status is Status.ACTIVE, "reading the status writes nothing"


@pytest.mark.parametrize("status", [Status.PAID, Status.EXPIRED, Status.CANCELLED])
def test_status_at_leaves_a_final_charge_alone(status: Status) -> None:
    charge = make_charge(status)
    for offset in (timedelta(0), timedelta(minutes=15), timedelta(days=3)):
        assert charge.status_at(T0 + offset) is status


def test_api_pix_names() -> None:
    assert Status.ACTIVE.api_pix == "ATIVA"
    assert Status.PAID.api_pix == "CONCLUIDA"
    assert Status.CANCELLED.api_pix == "REMOVIDA_PELO_USUARIO_RECEBEDOR"
    assert all(isinstance(status.api_pix, str) for status in Status)


def test_iso_is_utc_with_milliseconds() -> None:
    assert iso(T0) == "2026-11-28T01:02:03.456Z"
    assert iso(T0.replace(microsecond=0)) == "2026-11-28T01:02:03.000Z"
