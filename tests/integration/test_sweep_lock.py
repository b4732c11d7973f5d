"""One reconciliation sweeper at a time: two "processes" on one database."""

from __future__ import annotations

from pixlive.adapters.sweep_lock import sweep_lock
from tests.integration.conftest import make_database


async def test_a_second_process_does_not_sweep_while_the_first_does(db_url: str) -> None:
    first, second = make_database(db_url), make_database(db_url)
    await first.start()
    await second.start()
    try:
        async with sweep_lock(first) as held:
            assert held
            async with sweep_lock(second) as other:
                # PostgreSQL: the advisory lock is taken; SQLite serves one process only.
                assert other is (not db_url.startswith("postgresql"))
        async with sweep_lock(second) as after:
            assert after  # released with the first sweep
    finally:
        await first.close()
        await second.close()
