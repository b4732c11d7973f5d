"""Queries on the events (the outbox): what a stream sends after its snapshot, or on
resuming, and what a process's hub loads when it learns of events it did not commit."""

from __future__ import annotations

from pixlive.domain.events import RecordedEvent
from pixlive.services.ports import Queries


async def events_after(
    queries: Queries, payment_id: str, after: int, limit: int
) -> list[RecordedEvent]:
    """This charge's events with an id above `after`, oldest first, at most `limit`."""
    return await queries.events_after(payment_id, after, limit)


async def all_events_after(queries: Queries, after: int, limit: int) -> list[RecordedEvent]:
    """Every charge's events with an id above `after`, oldest first, at most `limit`."""
    return await queries.all_events_after(after, limit)


async def last_event_id(queries: Queries) -> int:
    """The newest event's id (0 for none): where a stream of every event starts."""
    return await queries.last_event_id()
