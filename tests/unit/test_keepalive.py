"""One timer visits every connection once per interval, a bucket at a time (on a clock
moved by hand: no test waits for time to pass)."""

from __future__ import annotations

from itertools import pairwise

from pixlive.realtime.keepalive import SLOTS, Keepalive
from tests.unit.wire_fakes import ManualClock


class Connection:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.visits: list[float] = []

    def keepalive(self) -> None:
        self.visits.append(self.clock.time())


def test_every_connection_is_visited_once_per_interval() -> None:
    clock = ManualClock()
    wheel = Keepalive(interval=20, clock=clock)
    connections = [Connection(clock) for _ in range(3 * SLOTS)]
    for connection in connections:
        wheel.add(connection)
    clock.advance(50)
    wheel.stop()
    for connection in connections:
        assert 2 <= len(connection.visits) <= 3, connection.visits
        assert all(19.9 < b - a < 20.1 for a, b in pairwise(connection.visits))


def test_a_discarded_connection_is_not_visited_and_the_timer_stops() -> None:
    clock = ManualClock()
    wheel = Keepalive(interval=10, clock=clock)
    gone, kept = Connection(clock), Connection(clock)
    wheel.add(gone)
    wheel.add(kept)
    wheel.discard(gone)
    clock.advance(25)
    assert gone.visits == [] and kept.visits
    wheel.discard(kept)
    assert len(wheel) == 0
    clock.advance(15)
    assert clock.pending() == 0  # nothing to visit: no timer left running


def test_connections_that_arrive_together_are_visited_apart() -> None:
    """A reconnect storm (every client of a restarted server within a second) must not
    make one tick ping them all, interval after interval."""
    clock = ManualClock()
    wheel = Keepalive(interval=20, clock=clock)
    connections = [Connection(clock) for _ in range(10 * SLOTS)]
    for connection in connections:  # all at the same moment
        wheel.add(connection)
    clock.advance(24)
    wheel.stop()
    assert all(c.visits for c in connections), "every connection is visited in an interval"
    # not before half an interval: a client that just connected needs no ping yet
    assert min(c.visits[0] for c in connections) >= 10 - 1e-9
    per_tick: dict[float, int] = {}
    for connection in connections:
        per_tick[connection.visits[0]] = per_tick.get(connection.visits[0], 0) + 1
    assert max(per_tick.values()) == 20, per_tick  # half the wheel's ticks, twenty each


def test_a_new_connection_on_an_even_wheel_waits_a_whole_interval() -> None:
    clock = ManualClock()
    wheel = Keepalive(interval=30, clock=clock)
    for _ in range(SLOTS):
        wheel.add(Connection(clock))
    clock.advance(5)
    late = Connection(clock)
    added_at = clock.time()
    wheel.add(late)
    clock.advance(40)
    wheel.stop()
    assert late.visits and late.visits[0] - added_at >= 30 * (SLOTS - 1) / SLOTS - 1e-9
