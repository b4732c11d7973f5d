"""One timer visits every connection once per interval, a bucket at a time."""

from __future__ import annotations

import asyncio
from itertools import pairwise

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


async def test_connections_that_arrive_together_are_visited_apart() -> None:
    """A reconnect storm (every client of a restarted server within a second) must not
    make one tick ping them all, interval after interval."""
    wheel = Keepalive(interval=0.5)
    connections = [Connection() for _ in range(10 * SLOTS)]
    added_at = asyncio.get_running_loop().time()
    for connection in connections:  # all in the same tick
        wheel.add(connection)
    await asyncio.sleep(0.6)
    wheel.stop()
    assert all(c.visits for c in connections), "every connection is visited in an interval"
    # not before half an interval: a client that just connected needs no ping yet
    assert min(c.visits[0] for c in connections) - added_at >= 0.25 - 0.01
    # a tick's visits follow one another within microseconds; ticks are 5 ms apart
    firsts = sorted(c.visits[0] for c in connections)
    ticks = [1]
    for before, after in pairwise(firsts):
        if after - before > 0.002:
            ticks.append(0)
        ticks[-1] += 1
    assert max(ticks) == 20, ticks  # half the wheel's ticks, twenty each


async def test_a_new_connection_on_an_even_wheel_waits_a_whole_interval() -> None:
    wheel = Keepalive(interval=0.3)
    for _ in range(SLOTS):
        wheel.add(Connection())
    await asyncio.sleep(0.05)
    late = Connection()
    added_at = asyncio.get_running_loop().time()
    wheel.add(late)
    await asyncio.sleep(0.4)
    wheel.stop()
    assert late.visits and late.visits[0] - added_at >= 0.3 * (SLOTS - 1) / SLOTS - 0.01
