"""Limits that keep one client, or one merchant integration gone wild, from exhausting a
process: live connections per client address and in all, charge creations per API key.

They are per process; behind a load balancer each process enforces its share.
"""

from __future__ import annotations

import time
from collections import defaultdict


class Refused(Exception):
    """A limit said no; the entry points answer 429 (or close a WebSocket with 1013)."""

    def __init__(self, code: str, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


class StreamSlots:
    """Counts open streams (WebSocket, SSE, a waiting long poll) by client address."""

    def __init__(self, per_client: int, total: int) -> None:
        self.per_client = per_client
        self.total = total
        self.open = 0
        self._by_client: defaultdict[str, int] = defaultdict(int)

    def acquire(self, client: str) -> None:
        if self.open >= self.total:
            raise Refused("too_many_streams", "the server holds all the streams it can")
        if self._by_client[client] >= self.per_client:
            raise Refused("too_many_streams", "too many live connections from this address")
        self._by_client[client] += 1
        self.open += 1

    def release(self, client: str) -> None:
        count = self._by_client[client] - 1
        if count > 0:
            self._by_client[client] = count
        else:
            del self._by_client[client]
        self.open -= 1


class RateLimit:
    """A token bucket per key: `rate` per second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[object, tuple[float, float]] = {}

    def take(self, key: object) -> None:
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1:
            wait = max(1, round((1 - tokens) / self.rate))
            raise Refused(
                "rate_limited", "too many charges created with this API key; slow down", wait
            )
        self._buckets[key] = (tokens - 1, now)
