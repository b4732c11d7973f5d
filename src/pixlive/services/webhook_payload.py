"""What a delivery carries: `{"type", "timestamp", "data"}`, the data holding the event's
own data and the charge as the merchant sees it (with its metadata), built once when the
delivery is made so that every retry sends the same bytes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from pixlive.domain.charge import Charge, iso
from pixlive.services.webhook_ports import NewDelivery, OutboxEvent

# The merchant's JSON of a charge, as the API gives it (from the composition root).
RenderCharge = Callable[[Charge], dict[str, Any]]


def msg_id(event_id: int) -> str:
    """The webhook-id: one per event, the same on every attempt and redelivery."""
    return f"evt_{event_id}"


def payload(event: OutboxEvent, charge: dict[str, Any] | None) -> bytes:
    """The body; `charge` is the charge's JSON (the merchant's view), if it has one."""
    data: dict[str, Any] = {"event_id": event.id, "status": event.status}
    if event.payment_id:
        data["payment_id"] = event.payment_id
    data.update(event.data)
    if charge is not None:
        data["charge"] = charge
    return orjson.dumps({"type": event.type, "timestamp": iso(event.at), "data": data})


def new_delivery(
    event: OutboxEvent,
    endpoint_id: str,
    charge: Charge | None,
    render: RenderCharge,
    kind: str,
    due: datetime,
) -> NewDelivery:
    return NewDelivery(
        endpoint_id=endpoint_id,
        event_id=event.id,
        event_type=event.type,
        kind=kind,
        msg_id=msg_id(event.id),
        payload=payload(event, render(charge) if charge is not None else None).decode(),
        due=due,
    )
