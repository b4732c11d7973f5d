"""The event as every transport sends it, serialised once per event, not per subscriber."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pixlive.domain.charge import iso
from pixlive.domain.events import RecordedEvent


def event_dict(event: RecordedEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "payment_id": event.payment_id,
        "status": event.status,
        "at": iso(event.at),
        "data": event.data,
    }


def event_json(event: RecordedEvent) -> bytes:
    return orjson.dumps(event_dict(event))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event ready for the wire: its id (to resume from), whether it ends the charge's
    stream, and its JSON."""

    payment_id: str
    id: int
    final: bool
    payload: bytes


def delivery(event: RecordedEvent) -> Delivery:
    return Delivery(event.payment_id, event.id, event.is_final, event_json(event))


def bus_message(item: Delivery) -> bytes:
    """`<payment id> <event id> <0|1 final> <json>`: a hub routes without parsing the JSON."""
    return b"%s %d %d %s" % (item.payment_id.encode(), item.id, item.final, item.payload)


def parse_bus_message(message: bytes) -> Delivery:
    payment_id, event_id, final, payload = message.split(b" ", 3)
    return Delivery(payment_id.decode(), int(event_id), final == b"1", payload)
