"""Group commit: one transaction, one fsync, for all the writes waiting at that moment.

A batch first runs optimistically: its use cases one after the other with no savepoint
(on PostgreSQL that saves two round trips per use case), after one statement that reads
and locks the charges they said they would change. Failures are rare, so when one use case
fails, the whole batch is rolled back and run again with a savepoint around each use case:
the one that failed leaves the others untouched. Every caller is answered only after the
batch's COMMIT returned, so a 200 always means "on disk". Events are handed to `on_commit`
after that, never before.

Before that, a batch whose jobs all named their charges is tried set-wise (setwise.py): the
use cases run against the charges read in one statement, and their writes go to the
database together at the end. When that cannot stand as run (a retried endToEndId, a job
asking for something else), the batch goes on the ordinary way, in the same transaction
when nothing was written, else after a rollback.

Between batches, once the callers are answered, the database may do its upkeep (`tidy`:
SQLite's WAL checkpoint), so that no payment waits for it inside a COMMIT.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from pixlive.adapters.database import Database, WriteSession
from pixlive.adapters.errors import Conflict, DatabaseUnavailable, TransientConflict
from pixlive.adapters.repository import LockedCharges, Repository
from pixlive.adapters.setwise import NotDeferred, SetWiseBatch, Written
from pixlive.domain.events import RecordedEvent
from pixlive.services.unit_of_work import Job, UnitOfWork

T = TypeVar("T")
log = logging.getLogger("pixlive.writer")

MAX_BATCH = 512
BATCH_ATTEMPTS = 3  # a deadlock between two processes' batches is retried, then a 503


class _SetWise(Enum):
    DONE = "done"  # written: the batch's results stand
    UNTOUCHED = "untouched"  # nothing written: run the batch the ordinary way
    ROLLBACK = "rollback"  # written in part, or a statement failed: roll back first
    SAVEPOINTS = "savepoints"  # a job failed (or the read did): one savepoint per job


@dataclass
class _Pending:
    job: Job[Any]
    future: asyncio.Future[Any]
    charges: Collection[str]
    result: Any = None
    error: BaseException | None = None
    events: list[RecordedEvent] = field(default_factory=list)


class GroupCommitWriter:
    def __init__(
        self,
        db: Database,
        on_commit: Callable[[list[RecordedEvent]], None],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.db = db
        self.on_commit = on_commit
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.batches = 0
        self.committed = 0
        self.reruns = 0  # batches run again with savepoints, after a use case failed
        self.set_wise = 0  # batches whose writes were made set-wise
        self._closed = False

    async def start(self) -> None:
        self._closed = False
        for n in range(self.db.writers):
            self._tasks.append(asyncio.create_task(self._loop(), name=f"pixlive-writer-{n}"))

    async def close(self) -> None:
        """Finishes what is queued and the batches being committed, then stops.

        Every caller is answered: a batch taken from the queue counts as done only once its
        callers have their result, so no batch is cancelled halfway through its COMMIT.
        """
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

    async def run(self, job: Job[T], *, charges: Collection[str] = ()) -> T:
        """Runs `job` in the next batch; returns once that batch committed.

        `charges`: the ids of the charges the job will read to change them; the batch
        reads and locks those of all its jobs in one statement before running them.
        """
        # A caller that goes away cancels only its wait: the job stays queued and is
        # committed with its batch (answering a cancelled future is skipped below).
        return await self.submit(job, charges=charges)

    def submit(self, job: Job[T], *, charges: Collection[str] = ()) -> asyncio.Future[T]:
        """`run` for callers with no coroutine of their own (the webhook's HTTP protocol):
        the future is answered once the job's batch committed, or with its error."""
        if self._closed:
            raise DatabaseUnavailable("the writer is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(job, future, charges))
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
                self._fail(batch, DatabaseUnavailable("writer failed"))
            except BaseException:
                # cancelled mid-batch: its outcome is unknown, so the callers get a 503
                # (the PSP retries; the ledger makes the retry a duplicate if it committed)
                self._fail(batch, DatabaseUnavailable("writer stopped"))
                raise
            finally:
                for _ in batch:
                    self._queue.task_done()
            await self.db.tidy()

    async def _commit(self, batch: list[_Pending]) -> None:
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                await self._attempt(batch)
                break
            except TransientConflict as exc:
                if attempt == BATCH_ATTEMPTS:
                    self._fail(batch, exc)
                    return
            except DatabaseUnavailable as exc:
                self._fail(batch, exc)
                return
        self.batches += 1
        self.committed += len(batch)
        events: list[RecordedEvent] = []
        for pending in batch:
            if pending.error is None:
                events.extend(pending.events)
            if pending.future.done():  # its caller went away
                continue
            if pending.error is not None:
                pending.future.set_exception(pending.error)
            else:
                pending.future.set_result(pending.result)
        if events:
            self.on_commit(events)

    def _fail(self, batch: list[_Pending], exc: DatabaseUnavailable) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(DatabaseUnavailable(str(exc)))

    async def _attempt(self, batch: list[_Pending]) -> None:
        async with self.db.write_session() as session:
            await session.begin()
            try:
                await self._run(session, batch)
                await session.commit(alone=len(batch) == 1 and self._queue.empty())
            except BaseException:
                try:
                    await session.rollback()
                except DatabaseUnavailable:
                    pass
                raise

    async def _run(self, session: WriteSession, batch: list[_Pending]) -> None:
        locked = None
        # A job that names no charge (a create, the sweep) writes what the set-wise pass
        # does not defer: such a batch goes the ordinary way straight away. So does a
        # lone job: its ordinary statements are fewer and cheaper than the set-wise ones
        # (on PostgreSQL, 1.8–2.6 against 2.6–3.1 ms for one Pix), and under light load
        # what counts is how soon the payer's page hears of the payment.
        if len(batch) > 1 and all(pending.charges for pending in batch):
            outcome, set_wise = await self._run_set_wise(session, batch)
            if outcome is _SetWise.DONE:
                self.set_wise += 1
                return
            if outcome is _SetWise.SAVEPOINTS:
                await self._rerun_with_savepoints(session, batch)
                return
            if outcome is _SetWise.ROLLBACK:
                await session.rollback()
                await session.begin()
            elif set_wise is not None:  # nothing written: its read (and locks) still hold
                locked = LockedCharges(dict(set_wise.rows))
        if not await self._run_optimistic(session, batch, locked):
            await self._rerun_with_savepoints(session, batch)

    async def _run_set_wise(
        self, session: WriteSession, batch: list[_Pending]
    ) -> tuple[_SetWise, SetWiseBatch | None]:
        try:
            set_wise = await SetWiseBatch.read(
                session.conn, [charge_id for pending in batch for charge_id in pending.charges]
            )
        except DatabaseUnavailable:
            raise
        except Exception:  # an id the database refuses: the rerun reads them one by one
            return _SetWise.SAVEPOINTS, None
        repo = set_wise.repository()  # holds nothing of its own: one for all the jobs
        uows = []
        for pending in batch:
            uow = UnitOfWork(repo)
            try:
                pending.result = await pending.job(uow)
            except DatabaseUnavailable:
                raise
            except NotDeferred:
                return _SetWise.UNTOUCHED, set_wise
            except Exception:
                # It would fail the ordinary way too (unless it failed on what the pass
                # refused to defer, and then caught that): give it its savepoint.
                return (_SetWise.UNTOUCHED if set_wise.refused else _SetWise.SAVEPOINTS), set_wise
            if set_wise.refused:  # it caught the NotDeferred: its result cannot stand
                return _SetWise.UNTOUCHED, set_wise
            uows.append(uow)
        try:
            written = await set_wise.write()
        except DatabaseUnavailable:
            raise
        except Exception:  # a value the database refuses: the ordinary run finds whose
            return _SetWise.ROLLBACK, set_wise
        if written is Written.NOTHING:
            return _SetWise.UNTOUCHED, set_wise
        if written is Written.SOME:
            return _SetWise.ROLLBACK, set_wise
        for pending, uow in zip(batch, uows, strict=True):
            pending.error, pending.events = None, set_wise.resolve(uow.events)
        return _SetWise.DONE, set_wise

    async def _run_optimistic(
        self, session: WriteSession, batch: list[_Pending], locked: LockedCharges | None = None
    ) -> bool:
        """Runs the batch's use cases with no savepoint; False as soon as one fails, for
        its writes so far can then only be undone with the whole transaction's."""
        if locked is None:
            charge_ids = {charge_id for pending in batch for charge_id in pending.charges}
            try:
                locked = await Repository(session.conn).lock_charges(charge_ids)
            except DatabaseUnavailable:
                raise
            except Exception:  # an id the database refuses: the rerun reads them one by one
                return False
        for pending in batch:
            uow = UnitOfWork(Repository(session.conn, locked))
            try:
                pending.result = await pending.job(uow)
            except DatabaseUnavailable:
                raise
            except Exception:
                return False
            pending.error, pending.events = None, uow.events
        return True

    async def _rerun_with_savepoints(self, session: WriteSession, batch: list[_Pending]) -> None:
        self.reruns += 1
        await session.rollback()
        await session.begin()
        for pending in batch:
            await self._run_one(session, pending)

    async def _run_one(self, session: WriteSession, pending: _Pending) -> None:
        # A Conflict means another writer committed the same key first; one rerun sees it.
        for attempt in (1, 2):
            uow = UnitOfWork(Repository(session.conn))
            await session.savepoint()
            try:
                pending.result = await pending.job(uow)
            except DatabaseUnavailable:
                raise
            except Conflict as exc:
                await session.rollback_savepoint()
                if attempt == 2:
                    pending.error, pending.result, pending.events = exc, None, []
                    return
                continue
            except Exception as exc:
                await session.rollback_savepoint()
                pending.error, pending.result, pending.events = exc, None, []
                return
            await session.release()
            pending.error, pending.events = None, uow.events
            return
