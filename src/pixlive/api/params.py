"""Integer parameters at the edge: each is range-checked here, before it can reach a database
whose INTEGER (SQLite's, PostgreSQL's BIGINT) is a signed 64-bit number. A larger value
made the driver raise OverflowError, a 500; here it is a 422 with the error JSON.

The routes take `EventId` (query parameters, `Last-Event-ID`); the transports that read a
request themselves take `event_id()`, so both accept the same texts."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header
from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

EVENT_ID_MAX = 2**63 - 1
_DIGITS_MAX = len(str(EVENT_ID_MAX))
EVENT_ID_RULE = f"must be a whole number from 0 to {EVENT_ID_MAX}"


def event_id(text: str) -> int | None:
    """The event id that `text` writes (ASCII digits, at most 2**63 - 1), else None."""
    if not (0 < len(text) <= _DIGITS_MAX and text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= EVENT_ID_MAX else None


def _event_id(value: object) -> object:
    # Text must be plain digits: pydantic alone would take " 5", "+5", "5.0" and "1_000",
    # which the transports that parse a request themselves refuse.
    if isinstance(value, str) and event_id(value) is None:
        raise PydanticCustomError("event_id", EVENT_ID_RULE)
    return value


# Any row id the API takes (an event's, in a path or a cursor): what fits the database.
RowId = Annotated[int, BeforeValidator(_event_id), Field(ge=0, le=EVENT_ID_MAX)]

EventId = Annotated[
    RowId,
    Field(
        description="An event id: the events after it are sent (the `last_event_id` of a charge, "
        "or the `id` of the last event received)",
        examples=[7],
    ),
]

# An EventSource sends back the `id:` of the last event it received when it reconnects.
LastEventIdHeader = Annotated[
    EventId | None,
    Header(
        alias="Last-Event-ID",
        description="Sent by an EventSource that reconnects: resume after this event id "
        "(takes precedence over `after`)",
    ),
]


def resume_point(last_event_id: int | None, after: int | None) -> int | None:
    """Where an SSE stream resumes: the header an EventSource sends wins over `?after=`."""
    return last_event_id if last_event_id is not None else after
