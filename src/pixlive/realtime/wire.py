"""The event as every transport sends it, serialised (and framed) once per event, not per
subscriber."""

from __future__ import annotations

from typing import Any

import orjson
from websockets.frames import Frame, Opcode

from pixlive.domain.charge import iso
from pixlive.domain.events import FINAL_EVENT_TYPES, RecordedEvent


def event_dict(event: RecordedEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "payment_id": event.payment_id,
        "status": event.status,
        "at": iso(event.at),
        "data": event.data,
    }


class Delivery:
    """One event ready for the wire: its id (to resume from), its type, and its JSON as
    text; the SSE frame is built on first use and then shared by every SSE subscriber."""

    __slots__ = ("_sse", "_ws", "final", "id", "payment_id", "text", "type")

    def __init__(self, payment_id: str, event_id: int, event_type: str, text: str) -> None:
        self.payment_id = payment_id
        self.id = event_id
        self.type = event_type
        self.text = text
        self.final = event_type in FINAL_EVENT_TYPES
        self._sse: bytes | None = None
        self._ws: bytes | None = None

    @property
    def sse(self) -> bytes:
        if self._sse is None:
            self._sse = f"id: {self.id}\nevent: {self.type}\ndata: {self.text}\n\n".encode()
        return self._sse

    @property
    def ws(self) -> bytes:
        """The whole WebSocket text frame, written as is to every WebSocket subscriber."""
        if self._ws is None:
            self._ws = Frame(Opcode.TEXT, self.text.encode()).serialize(mask=False)
        return self._ws


def delivery(event: RecordedEvent) -> Delivery:
    text = orjson.dumps(event_dict(event)).decode()
    return Delivery(event.payment_id, event.id, event.type, text)


def bus_message(item: Delivery) -> bytes:
    """`<payment id> <event id> <type> <json>`: a hub routes without parsing the JSON."""
    return f"{item.payment_id} {item.id} {item.type} {item.text}".encode()


def parse_bus_message(message: bytes) -> Delivery:
    payment_id, event_id, event_type, text = message.decode().split(" ", 3)
    return Delivery(payment_id, int(event_id), event_type, text)
