"""Use cases that still go row by row (create, cancel, expiry, API keys), as jobs.

A job is a coroutine function of a `UnitOfWork`: the transaction's repository, and the
events the job recorded. `jobs` is the operation the writer runs them with: one after
the other, in the batch's transaction (`writer.run(jobs, job)`).

A job that raises (a refusal, a conflict) fails the batch's transaction: the writer runs
the batch again item by item, each in a transaction of its own, so that the job's writes
are undone and its caller alone gets the error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

from pixlive.domain.errors import DomainError
from pixlive.domain.events import Event, RecordedEvent
from pixlive.services.ports import Repository, Store
from pixlive.services.records import Done

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


Job = Callable[[UnitOfWork], Awaitable[T]]


async def jobs(store: Store, items: Sequence[Job[T]], now: datetime) -> Done[T]:
    """The writer's operation for jobs: each in turn, on the batch's store."""
    results: list[T | DomainError] = []
    events: list[RecordedEvent] = []
    for job in items:
        uow = UnitOfWork(store)
        results.append(await job(uow))
        events.extend(uow.events)
    return Done(results, events)
