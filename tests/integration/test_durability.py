"""Durability and the group-commit writer, on SQLite and PostgreSQL: an answer means
committed; batches keep their jobs apart; events go out only after the commit; an
unreachable database gives DatabaseUnavailable, never a hang."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from itest import (
    RECEIVER,
    T0,
    WAIT,
    Clock,
    Gate,
    Stack,
    at,
    confirm_in,
    count_received,
    make_database,
    pix_for,
    received,
    start_stack,
    stop_stack,
)

from pixlive.adapters.errors import Conflict, DatabaseUnavailable
from pixlive.adapters.migrate import upgrade
from pixlive.adapters.postgres import PostgresDatabase
from pixlive.adapters.sqlite_connection import sqlite_path
from pixlive.domain.charge import Status
from pixlive.domain.errors import ChargeFinal, DomainError
from pixlive.domain.events import RecordedEvent
from pixlive.domain.ids import new_charge_id
from pixlive.services import api_keys
from pixlive.services.charges import NewCharge, cancel_charge, create_charge
from pixlive.services.confirmation import Outcome, confirm
from pixlive.services.expiry import expire_due
from pixlive.services.unit_of_work import UnitOfWork, jobs
from pixlive.services.writer import Writer

# durability -----------------------------------------------------------------------------


async def test_a_confirmation_is_committed_when_run_returns(db_url: str) -> None:
    stack = await start_stack(db_url)
    try:
        charge = await stack.new_charge(1234)
        pix = pix_for(charge.id, 1234)
        assert await stack.confirm(pix) is Outcome.PAID

        # a brand-new connection, as another process or a restart would open
        fresh = make_database(db_url)
        await fresh.start()
        try:
            async with fresh.read() as repo:
                row = await received(repo, pix.end_to_end_id)
                stored = await repo.get_charge(charge.id)
                events = await repo.events_after(charge.id, 0, 10)
        finally:
            await fresh.close()
    finally:
        await stop_stack(stack)

    assert row is not None and row.outcome == "paid"
    assert stored is not None and stored.status is Status.PAID
    assert [e.type for e in events] == ["payment.created", "payment.paid"]


async def test_sqlite_writes_through_wal_with_full_fsync(sqlite_url: str) -> None:
    db_url = sqlite_url
    stack = await start_stack(db_url)
    try:
        async with stack.db.transaction() as transaction:  # the writer's connection
            conn = transaction.store.conn  # type: ignore[attr-defined]
            synchronous = await conn.fetchrow("PRAGMA synchronous")
            journal = await conn.fetchrow("PRAGMA journal_mode")
    finally:
        await stop_stack(stack)
    assert synchronous is not None and synchronous[0] == 2  # FULL
    assert journal is not None and journal[0] == "wal"
    with sqlite3.connect(sqlite_path(db_url)) as raw:  # WAL sticks to the file
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_an_unreachable_postgresql_gives_database_unavailable(free_port: int) -> None:
    db = PostgresDatabase(f"postgresql://postgres@127.0.0.1:{free_port}/x")
    published: list[RecordedEvent] = []
    writer = Writer(db, Clock(), published.extend)

    await asyncio.wait_for(db.start(), WAIT)  # comes up; answers 503s until the DB is back
    await writer.start()
    try:
        assert await asyncio.wait_for(db.ping(), WAIT) is False
        for _ in range(2):
            with pytest.raises(DatabaseUnavailable):
                await asyncio.wait_for(writer.run(confirm, [pix_for("A" * 25, 100)]), WAIT)
        results = await asyncio.wait_for(
            asyncio.gather(
                *(writer.run(jobs, count_received) for _ in range(10)),
                return_exceptions=True,
            ),
            WAIT,
        )
        assert all(isinstance(r, DatabaseUnavailable) for r in results)
        with pytest.raises(DatabaseUnavailable):
            async with db.read() as repo:
                await repo.conn.fetchrow("SELECT 1")
    finally:
        await asyncio.wait_for(writer.close(), WAIT)
        await asyncio.wait_for(db.close(), WAIT)
    assert published == []


async def test_a_lost_postgresql_connection_fails_its_batch_and_the_writer_recovers(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server drops the writer's connection mid-batch: the callers get
    DatabaseUnavailable (a 503, so the PSP retries), nothing half-done stays, and the next
    job runs on a new connection."""
    stack = await start_stack(pg_url, writers=1)
    try:
        charge = await stack.new_charge(1234)
        pix = pix_for(charge.id, 1234)

        async def killed(uow: UnitOfWork) -> None:
            await confirm_in(uow, pix, T0)
            await uow.repo.conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

        with pytest.raises(DatabaseUnavailable):
            await stack.run(killed)
        assert await stack.count("received_pix") == 0
        assert [e.type for e in stack.published] == ["payment.created"]

        assert await stack.confirm(pix) is Outcome.PAID
        assert await stack.count("received_pix") == 1
    finally:
        await stop_stack(stack)
    # an expected failure, not the writer's "this is a bug" path
    assert not [r for r in caplog.records if r.name == "pixlive.writer"]


async def test_a_writer_connection_lost_between_batches_is_replaced(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The writers keep their connections between batches; one the server closed while it
    sat idle is left for a new one, and the next batch does not fail for it."""
    stack = await start_stack(pg_url, writers=1)
    try:
        charge = await stack.new_charge(1234)
        admin = await asyncpg.connect(pg_url)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        await asyncio.sleep(0.2)  # for the client to see its connections close

        assert await stack.confirm(pix_for(charge.id, 1234)) is Outcome.PAID
    finally:
        await stop_stack(stack)
    assert not [r for r in caplog.records if r.name == "pixlive.writer"]


# the group-commit writer ----------------------------------------------------------------


async def test_concurrent_runs_are_committed_in_batches(stack: Stack) -> None:
    charges = [await stack.new_charge(100 + n) for n in range(5)]
    batches, committed = stack.writer.batches, stack.writer.committed
    pixes = [pix for c in charges for pix in [pix_for(c.id, c.value)] * 20]  # PSP retries

    outcomes = await asyncio.gather(*(stack.confirm(p) for p in pixes))

    assert outcomes.count(Outcome.PAID) == 5
    assert outcomes.count(Outcome.DUPLICATE) == 95
    assert stack.writer.committed - committed == 100
    assert stack.writer.batches - batches < stack.writer.committed - committed
    assert await stack.count("received_pix") == 5


async def test_a_failing_job_leaves_the_rest_of_its_batch_alone(open_stack: Any) -> None:
    stack: Stack = await open_stack(writers=1)
    good, final = await stack.new_charge(100), await stack.new_charge(200)
    await stack.run(lambda uow: cancel_charge(uow, final.id, at(1)))
    await stack.run(lambda uow: api_keys.create_api_key(uow, "taken", T0))
    published = len(stack.published)
    good_pix, other_pix = pix_for(good.id, 100), pix_for("U" * 25, 300)

    class Boom(DomainError):
        pass

    async def writes_then_raises(uow: UnitOfWork) -> None:
        await confirm_in(uow, pix_for(good.id, 100), T0)  # would be a mismatch event
        await uow.repo.add_charge(replace(good, id=new_charge_id()))  # would be a third charge
        raise Boom("the use case refuses")

    async def violates_a_constraint(uow: UnitOfWork) -> None:
        await confirm_in(uow, pix_for("V" * 25, 400), T0)
        await api_keys.create_api_key(uow, "taken", T0)  # a unique key refuses this one

    gate = Gate()
    blocker = asyncio.ensure_future(stack.run(gate))
    await asyncio.wait_for(gate.entered.wait(), WAIT)
    reruns = stack.writer.reruns
    jobs = [
        asyncio.ensure_future(stack.run(job))
        for job in (
            lambda uow: confirm_in(uow, good_pix, T0),
            writes_then_raises,
            lambda uow: cancel_charge(uow, final.id, at(2)),  # ChargeFinal
            violates_a_constraint,
            lambda uow: confirm_in(uow, other_pix, T0),
        )
    ]
    await asyncio.sleep(0.05)
    gate.release.set()
    await blocker
    results = await asyncio.gather(*jobs, return_exceptions=True)

    assert stack.writer.reruns == reruns + 1  # all five together, then one by one
    assert results[0] is Outcome.PAID
    assert isinstance(results[1], Boom)
    assert isinstance(results[2], ChargeFinal)
    assert isinstance(results[3], Conflict)
    assert results[4] is Outcome.UNKNOWN_TXID
    # the good jobs' writes are committed; the failed jobs' writes are not
    assert await stack.count("received_pix") == 2
    assert await stack.count("charges") == 2
    assert await stack.count("api_keys") == 1
    assert [e.type for e in await stack.events(good.id)] == ["payment.created", "payment.paid"]
    assert [e.type for e in await stack.events(final.id)] == [
        "payment.created",
        "payment.cancelled",
    ]
    # only the successful jobs' events were published
    assert [e.type for e in stack.published[published:]] == ["payment.paid"]


async def test_a_failing_job_sends_its_batch_round_again_item_by_item(open_stack: Any) -> None:
    """No savepoints: one failing job rolls the batch back, and the writer runs its items
    again, each in a transaction of its own, so that the others commit and the failing one
    alone gets its error."""
    stack: Stack = await open_stack(writers=1)
    charges = [await stack.new_charge(100 + n) for n in range(3)]
    runs: list[str] = []

    class Boom(DomainError):
        pass

    def good(n: int) -> Any:
        async def job(uow: UnitOfWork) -> Outcome:
            runs.append(f"good{n}")
            return await confirm_in(uow, pix_for(charges[n].id, 100 + n), T0)

        return job

    async def fails(uow: UnitOfWork) -> None:
        runs.append("bad")
        await confirm_in(uow, pix_for(charges[2].id, 102), T0)
        raise Boom("refused after writing")

    async def in_one_batch(*jobs: Any) -> list[Any]:
        gate = Gate()
        blocker = asyncio.ensure_future(stack.run(gate))
        await asyncio.wait_for(gate.entered.wait(), WAIT)
        futures = [asyncio.ensure_future(stack.run(job)) for job in jobs]
        await asyncio.sleep(0.05)
        gate.release.set()
        await blocker
        return list(await asyncio.gather(*futures, return_exceptions=True))

    reruns = stack.writer.reruns
    assert await in_one_batch(good(0)) == [Outcome.PAID]
    assert stack.writer.reruns == reruns

    results = await in_one_batch(good(1), fails, good(2))

    assert stack.writer.reruns == reruns + 1
    assert results[0] is Outcome.PAID
    assert isinstance(results[1], Boom)
    assert results[2] is Outcome.PAID  # the failed job's write to its charge was undone
    assert runs == ["good0", "good1", "bad", "good1", "bad", "good2"]
    assert await stack.count("received_pix") == 3
    paid = [e.payment_id for e in stack.published if e.type == "payment.paid"]
    assert paid == [c.id for c in charges]  # once each, though good1 ran twice


async def test_the_operations_of_a_batch_see_each_others_writes(open_stack: Any) -> None:
    """A sweep and confirmations in one batch: the confirmations, run after it, see the
    charge it expired; two Pix for one charge see each other."""
    stack: Stack = await open_stack(writers=1)
    charge = await stack.new_charge(100, expires_in=3600)
    due = await stack.new_charge(200, expires_in=60)
    first, second, late = pix_for(charge.id, 100), pix_for(charge.id, 100), pix_for(due.id, 200)
    gate = Gate()
    blocker = asyncio.ensure_future(stack.run(gate))
    await asyncio.wait_for(gate.entered.wait(), WAIT)
    stack.clock.at = at(30)  # the batch's time: before the due charge's expiry
    futures = [
        asyncio.ensure_future(stack.writer.run(jobs, lambda uow: expire_due(uow, at(61)))),
        asyncio.ensure_future(stack.writer.run(confirm, [first])),
        asyncio.ensure_future(stack.writer.run(confirm, [second])),
        asyncio.ensure_future(stack.writer.run(confirm, [late])),
    ]
    await asyncio.sleep(0.05)
    gate.release.set()
    await blocker
    batches = stack.writer.batches
    results = await asyncio.wait_for(asyncio.gather(*futures), WAIT)

    assert stack.writer.batches == batches + 1
    assert results == [1, [Outcome.PAID], [Outcome.MISMATCH], [Outcome.MISMATCH]]
    assert [e.type for e in await stack.events(charge.id)] == [
        "payment.created",
        "payment.paid",
        "payment.mismatch",
    ]
    assert [e.type for e in await stack.events(due.id)] == [
        "payment.created",
        "payment.expired",
        "payment.mismatch",
    ]


async def test_events_are_published_only_after_their_commit(open_stack: Any) -> None:
    stack: Stack = await open_stack()
    url = stack.url
    checks: list[tuple[list[int], list[int]]] = []

    def committed_ids(ids: list[int]) -> list[int]:
        """What a separate connection sees at this very moment (run in another thread, so
        that the writer's event loop is held still while it looks)."""
        found: list[int] = []

        def look() -> None:
            if url.startswith("sqlite"):
                with sqlite3.connect(sqlite_path(url)) as raw:
                    found.extend(r[0] for r in raw.execute("SELECT id FROM events") if r[0] in ids)
            else:

                async def query() -> None:
                    conn = await asyncpg.connect(url)
                    try:
                        rows = await conn.fetch("SELECT id FROM events WHERE id = ANY($1)", ids)
                        found.extend(r["id"] for r in rows)
                    finally:
                        await conn.close()

                asyncio.run(query())

        thread = threading.Thread(target=look)
        thread.start()
        thread.join(WAIT)
        return sorted(found)

    def on_commit(events: list[RecordedEvent]) -> None:
        ids = sorted(e.id for e in events)
        checks.append((ids, committed_ids(ids)))
        stack.published.extend(events)

    stack.writer.on_commit = on_commit
    charges = [await stack.new_charge(100 + n) for n in range(3)]

    async def refused(uow: UnitOfWork) -> None:
        await confirm_in(uow, pix_for(charges[0].id, 100), T0)
        raise ChargeFinal("refused after recording an event")

    results = await asyncio.gather(
        *(stack.confirm(pix_for(c.id, c.value)) for c in charges),
        stack.run(refused),
        return_exceptions=True,
    )

    assert results[:3] == [Outcome.PAID] * 3
    assert isinstance(results[3], ChargeFinal)
    assert checks and all(ids == seen for ids, seen in checks)
    paid = [e for e in stack.published if e.type == "payment.paid"]
    assert sorted(e.payment_id for e in paid) == sorted(c.id for c in charges)
    assert not [e for e in stack.published if e.type == "payment.mismatch"]


async def test_a_job_whose_data_the_database_refuses_fails_alone(open_stack: Any) -> None:
    """PostgreSQL refuses a NUL character in text (SQLite stores it): that refuses the one
    job, not the Pix confirmations that happen to share its batch."""
    stack: Stack = await open_stack(writers=1)
    charge = await stack.new_charge(100)
    gate = Gate()
    blocker = asyncio.ensure_future(stack.run(gate))
    await asyncio.wait_for(gate.entered.wait(), WAIT)
    command = NewCharge(value=100, expires_in=60, description="caf\x00e")
    jobs = [
        asyncio.ensure_future(stack.confirm(pix_for(charge.id, 100))),
        asyncio.ensure_future(stack.run(lambda uow: create_charge(uow, command, RECEIVER, T0))),
        asyncio.ensure_future(stack.confirm(pix_for("W" * 25, 100))),
    ]
    await asyncio.sleep(0.05)
    gate.release.set()
    await blocker
    results = await asyncio.gather(*jobs, return_exceptions=True)

    assert results[0] is Outcome.PAID
    assert results[2] is Outcome.UNKNOWN_TXID
    assert await stack.count("received_pix") == 2
    if stack.url.startswith("sqlite"):
        created, _ = results[1]
        stored = await stack.read(lambda repo: repo.get_charge(created.id))
        assert stored is not None and stored.description == "caf\x00e"
    else:
        assert isinstance(results[1], ValueError), results[1]
        assert not isinstance(results[1], DatabaseUnavailable)
        assert await stack.count("charges") == 1


async def test_a_batch_the_database_refuses_answers_every_caller(open_stack: Any) -> None:
    """A job that breaks the whole transaction (here: a statement the database cannot run)
    fails its batch; every caller gets DatabaseUnavailable and nothing is published."""
    stack: Stack = await open_stack(writers=1)
    gate = Gate()
    blocker = asyncio.ensure_future(stack.run(gate))
    await asyncio.wait_for(gate.entered.wait(), WAIT)
    assert await stack.count("received_pix") == 0  # reads go on meanwhile
    published = len(stack.published)

    async def broken(uow: UnitOfWork) -> None:
        await uow.repo.conn.execute("SELECT no_such_column FROM no_such_table")

    jobs = [
        asyncio.ensure_future(stack.run(job))
        for job in (
            lambda uow: confirm_in(uow, pix_for("B" * 25, 100), T0),
            broken,
            lambda uow: confirm_in(uow, pix_for("C" * 25, 100), T0),
        )
    ]
    await asyncio.sleep(0.05)
    gate.release.set()
    await blocker
    results = await asyncio.gather(*jobs, return_exceptions=True)

    # all three shared one batch, and none of it was committed
    assert all(isinstance(r, DatabaseUnavailable) for r in results), results
    assert await stack.count("received_pix") == 0
    assert len(stack.published) == published
    # the writer carries on
    assert await stack.confirm(pix_for("D" * 25, 100)) is Outcome.UNKNOWN_TXID


async def test_close_finishes_what_is_queued_and_what_is_committing(db_url: str) -> None:
    stack = await start_stack(db_url)
    charges = [await stack.new_charge(100 + n) for n in range(20)]
    pixes = [pix_for(c.id, c.value) for c in charges]
    runs = [asyncio.ensure_future(stack.writer.run(confirm, [p])) for p in pixes]
    await asyncio.sleep(0)  # queued; the writer may be in the middle of a batch

    await asyncio.wait_for(stack.writer.close(), WAIT)
    outcomes = await asyncio.wait_for(asyncio.gather(*runs, return_exceptions=True), WAIT)
    # close() answered every caller, and an answer means committed
    assert outcomes == [[Outcome.PAID]] * 20
    assert await stack.count("received_pix") == 20
    # a job handed to a closed writer is refused rather than left waiting forever
    with pytest.raises(DatabaseUnavailable):
        await asyncio.wait_for(stack.writer.run(jobs, count_received), WAIT)
    await stack.db.close()


async def test_a_database_first_used_by_many_at_once_opens_one_pool(pg_url: str) -> None:
    """A server that started while PostgreSQL was down opens its pool on first use; when
    many requests arrive at once, they share one pool, and close() leaves no connection
    behind."""
    db = PostgresDatabase(pg_url, writers=4, pool_size=6)  # not started: as after an outage
    writer = Writer(db, Clock(), lambda events: None)
    await writer.start()
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(db.ping() for _ in range(10)),
                *(writer.run(jobs, count_received) for _ in range(10)),
            ),
            WAIT,
        )
        assert results == [True] * 10 + [0] * 10
    finally:
        await asyncio.wait_for(writer.close(), WAIT)
        await asyncio.wait_for(db.close(), WAIT)

    name = pg_url.rsplit("/", 1)[-1]
    admin = await asyncpg.connect(pg_url.rsplit("/", 1)[0] + "/postgres")
    try:
        for _ in range(50):
            left = await admin.fetchval(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1", name
            )
            if left == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    assert left == 0


async def test_a_server_started_while_postgresql_was_down_recovers_on_its_own(
    pg_server_url: str,
) -> None:
    """503s while the database is missing; the same Database and writer work once it is
    there, with no restart."""
    name = "pixlive_t_" + secrets.token_hex(6)
    url = pg_server_url.rsplit("/", 1)[0] + "/" + name
    db = PostgresDatabase(url, writers=2, pool_size=4)
    writer = Writer(db, Clock(), lambda events: None)
    await asyncio.wait_for(db.start(), WAIT)
    await writer.start()
    admin = await asyncpg.connect(pg_server_url)
    try:
        assert await db.ping() is False
        with pytest.raises(DatabaseUnavailable):
            await asyncio.wait_for(writer.run(jobs, count_received), WAIT)

        await admin.execute(f'CREATE DATABASE "{name}"')
        await asyncio.to_thread(upgrade, url)

        assert await db.ping() is True
        outcome = await asyncio.wait_for(writer.run(confirm, [pix_for("R" * 25, 100)]), WAIT)
        assert outcome == [Outcome.UNKNOWN_TXID]
    finally:
        await asyncio.wait_for(writer.close(), WAIT)
        await asyncio.wait_for(db.close(), WAIT)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_sqlite_write_waits_for_another_process_holding_the_lock(sqlite_url: str) -> None:
    """BEGIN is taken on the loop when the lock is free; when another connection (another
    process: `pixlive apikey create`, a migration) holds it, the batch waits for it in the
    writer's thread, and the loop goes on meanwhile."""
    other = sqlite3.connect(sqlite_path(sqlite_url), isolation_level=None)
    stack = await start_stack(sqlite_url)
    try:
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.ensure_future(stack.new_charge())
        ticks = 0
        for _ in range(20):  # the loop is free while the batch waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not write.done()
        other.execute("COMMIT")
        charge = await asyncio.wait_for(write, WAIT)
        assert await stack.count("charges", "id = $1", charge.id) == 1
        # And with the lock free again, the next batch takes it at once.
        assert (await stack.new_charge()).id != charge.id
    finally:
        other.close()
        await stop_stack(stack)
