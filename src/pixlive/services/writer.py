"""The writer: group commit of the use cases waiting at one moment, in one transaction.

Callers hand the writer an operation (a use case over a batch: `confirmation.confirm`,
`jobs`, ...) and their item; the writer gathers what is queued, runs each operation once
over its callers' items against the transaction's store, commits once, answers every
caller only after the COMMIT returned (a 200 always means "on disk"), then hands the
batch's events to `on_commit` (the hub) — never before.

What goes wrong:
- the database unreachable: every caller of the batch gets `DatabaseUnavailable`;
- `TransientConflict` (a deadlock, or the ledger changed under the batch): the batch runs
  again, up to BATCH_ATTEMPTS times, then as unavailable;
- anything else an operation raises (a value the database refuses, a bug): the batch is
  rolled back and each item runs again in a batch of its own, so that it fails alone.

Between batches, once the callers are answered, the database may do its upkeep (`tidy`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pixlive.domain.errors import DomainError
from pixlive.domain.events import RecordedEvent
from pixlive.services.errors import DatabaseUnavailable, TransientConflict
from pixlive.services.ports import Clock, Store, Transactions
from pixlive.services.records import Done

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")
log = logging.getLogger("pixlive.writer")

MAX_BATCH = 512
BATCH_ATTEMPTS = 3

# A use case over a batch: the store of the transaction, its callers' items, the batch's time.
Operation = Callable[[Store, Sequence[I], datetime], Awaitable[Done[R]]]
OnCommit = Callable[[list[RecordedEvent]], None]


@dataclass(slots=True)
class _Pending:
    operation: Operation[Any, Any]
    item: Any
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Answer:
    results: list[Any]  # one per pending: a result, or the exception its caller gets
    events: list[RecordedEvent]


class Writer:
    def __init__(
        self,
        transactions: Transactions,
        clock: Clock,
        on_commit: OnCommit,
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.transactions = transactions
        self.clock = clock
        self.on_commit = on_commit
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.batches = 0
        self.committed = 0
        self.reruns = 0  # batches run again item by item, after an operation failed
        self._closed = False

    async def start(self) -> None:
        self._closed = False
        for n in range(self.transactions.writers):
            self._tasks.append(asyncio.create_task(self._loop(), name=f"pixlive-writer-{n}"))

    async def close(self) -> None:
        """Finishes what is queued and the batches being committed, then stops: a batch
        taken from the queue counts as done only once its callers have their answer."""
        self._closed = True
        if self._tasks:
            await self._queue.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        while not self._queue.empty():  # never started: refuse rather than leave waiting
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(DatabaseUnavailable("the writer is closed"))
            self._queue.task_done()

    async def run(self, operation: Operation[I, R], item: I) -> R:
        """Runs `operation` over `item` in the next batch; returns once it committed.

        A caller that goes away cancels only its wait: the item stays queued and is
        committed with its batch."""
        return await self.submit(operation, item)

    def submit(self, operation: Operation[I, R], item: I) -> asyncio.Future[R]:
        """`run` for callers with no coroutine of their own: the future is answered once
        the item's batch committed, or with its error."""
        if self._closed:
            raise DatabaseUnavailable("the writer is closed")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(operation, item, future))
        return future

    async def _loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            except Exception:  # pragma: no cover - a bug; never leave callers waiting
                log.exception("writer batch failed")
                _fail(batch, DatabaseUnavailable("writer failed"))
            except BaseException:
                # cancelled mid-batch: its outcome is unknown, so the callers get a 503
                # (the PSP retries; the ledger makes the retry a duplicate if it committed)
                _fail(batch, DatabaseUnavailable("writer stopped"))
                raise
            finally:
                for _ in batch:
                    self._queue.task_done()
            await self.transactions.tidy()

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            answer = await self._attempts(batch)
        except DatabaseUnavailable as exc:
            _fail(batch, exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                _refuse(batch[0], exc)
                return
            self.reruns += 1
            for pending in batch:
                await self._commit_alone(pending)
            return
        self._answer(batch, answer)

    async def _commit_alone(self, pending: _Pending) -> None:
        try:
            answer = await self._attempts([pending])
        except DatabaseUnavailable as exc:
            _fail([pending], exc)
            return
        except Exception as exc:
            _refuse(pending, exc)
            return
        self._answer([pending], answer)

    def _answer(self, batch: list[_Pending], answer: _Answer) -> None:
        self.batches += 1
        self.committed += len(batch)
        for pending, result in zip(batch, answer.results, strict=True):
            if pending.future.done():  # its caller went away
                continue
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
        if answer.events:
            self.on_commit(answer.events)

    async def _attempts(self, batch: list[_Pending]) -> _Answer:
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                return await self._attempt(batch)
            except TransientConflict:
                if attempt == BATCH_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, batch: list[_Pending]) -> _Answer:
        # One operation's items together, in the order their first caller came; the
        # order within an operation is the callers' order.
        groups: dict[Operation[Any, Any], list[int]] = {}
        for n, pending in enumerate(batch):
            groups.setdefault(pending.operation, []).append(n)
        results: list[Any] = [None] * len(batch)
        events: list[RecordedEvent] = []
        now = self.clock.now()
        async with self.transactions.transaction() as transaction:
            for operation, positions in groups.items():
                done = await operation(transaction.store, [batch[n].item for n in positions], now)
                for n, result in zip(positions, done.results, strict=True):
                    results[n] = result
                events.extend(done.events)
            await transaction.commit(alone=len(batch) == 1 and self._queue.empty())
        return _Answer(results, events)


def _refuse(pending: _Pending, exc: Exception) -> None:
    """One item failed alone (a value the database refuses, a conflict): its caller gets
    the error, translated by the entry point."""
    if not isinstance(exc, DomainError):
        log.debug("writer: an item failed alone: %r", exc)
    if not pending.future.done():
        pending.future.set_exception(exc)


def _fail(batch: list[_Pending], exc: DatabaseUnavailable) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(DatabaseUnavailable(str(exc)))
