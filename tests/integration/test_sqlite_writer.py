"""The SQLite writer's two shortcuts for a lone payment, on a real SQLite file: COMMIT on the
loop while the disk is quick, and the WAL checkpoint between batches instead of inside a
COMMIT."""

from __future__ import annotations

import asyncio
import gc
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from itest import WAIT, Stack, pix_for, start_stack, stop_stack

from pixlive.adapters import sqlite as sqlite_adapter
from pixlive.adapters.sqlite import SqliteDatabase, SqliteWriteSession
from pixlive.adapters.sqlite_connection import sqlite_path
from pixlive.services.confirmation import Outcome


def session_of(stack: Stack) -> SqliteWriteSession:
    assert isinstance(stack.db, SqliteDatabase)
    session = stack.db._session
    assert session is not None
    return session


async def wait_for_checkpoints(session: SqliteWriteSession, more_than: int) -> None:
    async def poll() -> None:
        while session.checkpoints <= more_than:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), WAIT)


def statuses_in_the_file_alone(url: str, tmp_path: Path, ids: list[str]) -> dict[str, str]:
    """What a copy of the database file without its WAL holds: what was checkpointed."""
    copy = tmp_path / "copy.db"
    shutil.copyfile(sqlite_path(url), copy)
    with sqlite3.connect(copy) as raw:
        marks = ",".join("?" * len(ids))
        rows = raw.execute(f"SELECT id, status FROM charges WHERE id IN ({marks})", ids)
        return dict(rows.fetchall())


async def test_the_database_file_holds_the_payments_once_the_writer_is_idle(
    sqlite_url: str, tmp_path: Path
) -> None:
    stack = await start_stack(sqlite_url)
    try:
        session = session_of(stack)
        first, second = await stack.new_charge(1000), await stack.new_charge(2000)
        assert await stack.confirm(pix_for(first.id, 1000)) is Outcome.PAID
        await asyncio.sleep(sqlite_adapter.CHECKPOINT_EVERY * 2)
        before = session.checkpoints
        assert await stack.confirm(pix_for(second.id, 2000)) is Outcome.PAID
        await wait_for_checkpoints(session, before)

        stored = statuses_in_the_file_alone(sqlite_url, tmp_path, [first.id, second.id])
    finally:
        await stop_stack(stack)
    # SQLite's own checkpoint would have waited for 1,000 pages of WAL
    assert stored == {first.id: "PAID", second.id: "PAID"}


async def test_a_commit_right_after_a_checkpoint_succeeds(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint's statement is finished before the next batch: a statement left in
    progress makes the next COMMIT fail ("SQL statements in progress") until the cursor
    happens to be collected, which, with the collector off, is never."""
    monkeypatch.setattr(sqlite_adapter, "CHECKPOINT_EVERY", 0.0)
    stack = await start_stack(sqlite_url)
    gc.disable()
    try:
        session = session_of(stack)
        charges = [await stack.new_charge(100 + n) for n in range(5)]
        outcomes = [await stack.confirm(pix_for(c.id, 100 + n)) for n, c in enumerate(charges)]
        checkpoints = session.checkpoints
    finally:
        gc.enable()
        await stop_stack(stack)
    assert outcomes == [Outcome.PAID] * 5
    # one after each lone batch (the last one's may not have run yet): every confirmation
    # above came right after a checkpoint
    assert checkpoints >= 9


async def test_a_lone_payment_commits_on_the_loop_unless_the_disk_is_slow(
    sqlite_url: str,
) -> None:
    stack = await start_stack(sqlite_url)
    try:
        session = session_of(stack)
        charges = [await stack.new_charge(500) for _ in range(3)]

        before = session.inline_commits
        assert await stack.confirm(pix_for(charges[0].id, 500)) is Outcome.PAID
        assert session.inline_commits == before + 1

        # COMMITs lately slow (a disk under load): the loop must not wait for the next one
        session.commit_seconds = 1.0
        blocked = 0

        async def ticks() -> None:
            nonlocal blocked
            while True:
                await asyncio.sleep(0)
                blocked += 1

        ticker = asyncio.ensure_future(ticks())
        try:
            assert await stack.confirm(pix_for(charges[1].id, 500)) is Outcome.PAID
        finally:
            ticker.cancel()
        assert session.inline_commits == before + 1
        assert blocked > 0  # the loop ran while that COMMIT was in the thread
        assert session.commit_seconds < 1.0  # and the average follows the disk back

        paid = await stack.count("charges", "status = 'PAID'")
    finally:
        await stop_stack(stack)
    assert paid == 2


async def test_a_batch_of_several_commits_in_the_thread(sqlite_url: str) -> None:
    stack = await start_stack(sqlite_url)
    try:
        session = session_of(stack)
        charges = [await stack.new_charge(700) for _ in range(20)]
        before = session.inline_commits
        outcomes: list[Any] = await asyncio.gather(
            *(stack.confirm(pix_for(c.id, 700)) for c in charges)
        )
        assert outcomes == [Outcome.PAID] * 20
        # the first may have gone alone; the rest queued behind it, committed together
        assert session.inline_commits - before <= 1
    finally:
        await stop_stack(stack)
