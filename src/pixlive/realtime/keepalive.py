"""One timer for every connection's keepalive, instead of one timer per connection.

Connections are spread over `SLOTS` buckets; each tick visits one bucket, so every
connection is visited once per interval and the pings of 10,000 idle sockets go out a
hundred at a time rather than all at once. A new connection joins the emptiest of the
buckets visited in the last half interval, so its first visit comes half an interval to an
interval after it arrived: after a restart every client reconnects within a second or two,
and a bucket chosen by arrival time alone would keep those pings together, thousands in one
tick, for as long as the connections last.
"""

from __future__ import annotations

from typing import Protocol

from pixlive.realtime.clock import LOOP_CLOCK, Clock, Timer

SLOTS = 100


class Alive(Protocol):
    def keepalive(self) -> None:
        """Called once per interval: ping the peer, or drop it if the last ping went unanswered."""


class Keepalive:
    def __init__(self, interval: float, clock: Clock = LOOP_CLOCK) -> None:
        self.interval = interval
        self.clock = clock
        self._buckets: list[set[Alive]] = [set() for _ in range(SLOTS)]
        self._where: dict[Alive, int] = {}
        self._tick = 0  # the bucket the next tick visits
        self._timer: Timer | None = None

    def __len__(self) -> int:
        return len(self._where)

    def add(self, connection: Alive) -> None:
        # Among equals the one visited last: on an even wheel a new connection waits a
        # whole interval for its first visit.
        buckets = self._buckets
        slot = last = (self._tick - 1) % SLOTS
        fewest = len(buckets[last])
        if fewest:
            for step in range(1, SLOTS // 2):
                candidate = (last - step) % SLOTS
                size = len(buckets[candidate])
                if size < fewest:
                    slot, fewest = candidate, size
                    if not size:
                        break
        buckets[slot].add(connection)
        self._where[connection] = slot
        if self._timer is None:
            self._schedule()

    def discard(self, connection: Alive) -> None:
        slot = self._where.pop(connection, None)
        if slot is not None:
            self._buckets[slot].discard(connection)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        self._timer = self.clock.call_later(self.interval / SLOTS, self._visit)

    def _visit(self) -> None:
        bucket = self._buckets[self._tick]
        self._tick = (self._tick + 1) % SLOTS
        for connection in list(bucket):
            connection.keepalive()
        if self._where:
            self._schedule()
        else:
            self._timer = None
