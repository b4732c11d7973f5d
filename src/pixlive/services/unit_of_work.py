"""The unit of work a use case runs in: one repository, and the events it recorded.

The group-commit writer gives each use case its own unit of work inside a shared
transaction; the events are published only once that transaction has committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Protocol, TypeVar

from pixlive.adapters.repository import Repository
from pixlive.domain.events import Event, RecordedEvent

T = TypeVar("T")


class UnitOfWork:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.events: list[RecordedEvent] = []

    async def record(self, event: Event) -> RecordedEvent:
        """Writes the event row beside the change that caused it (the outbox)."""
        recorded = await self.repo.add_event(event)
        self.events.append(recorded)
        return recorded

    def add_recorded(self, events: list[RecordedEvent]) -> None:
        """Events the repository wrote together with the change that caused them."""
        self.events.extend(events)


Job = Callable[[UnitOfWork], Awaitable[T]]


class Writer(Protocol):
    """Runs a use case in a unit of work and returns once it is durably committed."""

    async def run(self, job: Job[T], *, charges: Collection[str] = ()) -> T:
        """`charges`: the charges the job will read to change, which the writer may read
        ahead, together with other jobs' (a hint: the job reads them all the same)."""
        ...
