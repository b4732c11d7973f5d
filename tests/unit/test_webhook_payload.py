"""Every event type's body, built as the dispatcher builds it, against the schema that
docs/webhooks.md shows for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jsonschema
import orjson
import pytest

from pixlive.api.models import MerchantChargeOut
from pixlive.domain.charge import Charge, Status
from pixlive.domain.events import Event
from pixlive.domain.webhook_endpoint import EVENT_TYPES, WebhookEndpointDisabled
from pixlive.services.webhook_payload import payload
from pixlive.services.webhook_ports import OutboxEvent
from tests.webhook_schemas import schemas, validate

NOW = datetime(2026, 12, 2, 1, 2, 3, 456000, tzinfo=UTC)
E2E = "E" + "1" * 31


def charge() -> Charge:
    return Charge(
        id="a" * 25,
        value=1234,
        status=Status.ACTIVE,
        description="Pedido",
        created_at=NOW,
        expires_at=NOW + timedelta(minutes=30),
        paid_at=None,
        end_to_end_id=None,
        payer=None,
        metadata={"order": "17"},
        brcode="000201",
        last_event_id=0,
    )


def body(event: Event, with_charge: Charge | None, event_id: int = 7) -> dict[str, object]:
    outbox = OutboxEvent(
        event_id, event.type, event.payment_id, str(event.status), event.at, event.data
    )
    rendered = (
        MerchantChargeOut.of(with_charge, "http://127.0.0.1:8000").model_dump(mode="json")
        if with_charge is not None
        else None
    )
    parsed: dict[str, object] = orjson.loads(payload(outbox, rendered))
    return parsed


def every_type() -> dict[str, dict[str, object]]:
    made: dict[str, dict[str, object]] = {}
    created = charge()
    made["payment.created"] = body(created.created_event(), created)
    paid = charge()
    made["payment.paid"] = body(paid.pay(end_to_end_id=E2E, at=NOW), paid)
    expired = charge()
    made["payment.expired"] = body(expired.expire(at=NOW), expired)
    cancelled = charge()
    made["payment.cancelled"] = body(cancelled.cancel(at=NOW), cancelled)
    other = charge()
    made["payment.mismatch"] = body(
        other.mismatch(end_to_end_id=E2E, received=100, reason="value", at=NOW), other
    )
    made["webhook_endpoint.disabled"] = body(
        WebhookEndpointDisabled(
            payment_id="",
            status="DISABLED",
            at=NOW,
            data={"endpoint_id": "we_" + "b" * 24, "url": "https://x.example/h", "reason": "gone"},
        ),
        None,
    )
    return made


def test_the_docs_have_a_schema_for_every_type() -> None:
    assert set(schemas()) == {"envelope", "charge", *EVENT_TYPES}


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_body_is_as_documented(event_type: str) -> None:
    made = every_type()[event_type]
    assert made["type"] == event_type
    validate(made)


def test_the_schemas_refuse_what_is_not_documented() -> None:
    paid = every_type()["payment.paid"]
    data = dict(paid["data"])  # type: ignore[call-overload]
    del data["charge"]
    with pytest.raises(jsonschema.ValidationError):
        validate({**paid, "data": data})
    with pytest.raises(jsonschema.ValidationError):
        validate({**paid, "timestamp": "yesterday"})
