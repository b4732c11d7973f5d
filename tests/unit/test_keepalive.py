"""One timer visits every connection once per interval, a bucket at a time."""

from __future__ import annotations

import asyncio

from pixlive.realtime.keepalive import SLOTS, Keepalive


class Connection:
    def __init__(self) -> None:
        self.visits: list[float] = []

    def keepalive(self) -> None:
        self.visits.append(asyncio.get_running_loop().time())


async def test_every_connection_is_visited_once_per_interval() -> None:
    wheel = Keepalive(interval=0.2)
    connections = [Connection() for _ in range(3 * SLOTS)]
    for connection in connections:
        wheel.add(connection)
    await asyncio.sleep(0.5)
    wheel.stop()
    for connection in connections:
        assert 2 <= len(connection.visits) <= 3, connection.visits


async def test_a_discarded_connection_is_not_visited_and_the_timer_stops() -> None:
    wheel = Keepalive(interval=0.1)
    gone, kept = Connection(), Connection()
    wheel.add(gone)
    wheel.add(kept)
    wheel.discard(gone)
    await asyncio.sleep(0.25)
    assert gone.visits == [] and kept.visits
    wheel.discard(kept)
    assert len(wheel) == 0
    await asyncio.sleep(0.15)
    assert wheel._timer is None  # nothing to visit: no timer left running
