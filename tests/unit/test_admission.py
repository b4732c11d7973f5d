"""The limits on streams per address and in all, and the token bucket."""

from __future__ import annotations

import pytest

from pixlive.realtime.admission import RateLimit, Refused, StreamSlots


def test_stream_slots_per_client_and_total() -> None:
    slots = StreamSlots(per_client=2, total=3)
    slots.acquire("a")
    slots.acquire("a")
    with pytest.raises(Refused) as refused:
        slots.acquire("a")
    assert refused.value.code == "too_many_streams"
    slots.acquire("b")
    with pytest.raises(Refused):
        slots.acquire("c")  # the total is reached
    slots.release("a")
    slots.acquire("c")
    assert slots.open == 3
    for client in ("a", "b", "c"):
        slots.release(client)
    assert slots.open == 0
    assert not slots._by_client  # nothing left behind for addresses that went away


def test_rate_limit_allows_a_burst_then_refills(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("pixlive.realtime.admission.time.monotonic", lambda: now[0])
    limit = RateLimit(rate=2, burst=3)
    for _ in range(3):
        limit.take("key")
    with pytest.raises(Refused) as refused:
        limit.take("key")
    assert refused.value.code == "rate_limited"
    assert refused.value.retry_after >= 1
    limit.take("other")  # buckets are per key
    now[0] += 0.5  # one token back at 2 per second
    limit.take("key")
    with pytest.raises(Refused):
        limit.take("key")
