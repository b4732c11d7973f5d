"""The hub routes each event to its charge's subscribers once, drops the slow, and catches
up from the database after a bus outage."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from pixlive.adapters.bus.memory import MemoryBus
from pixlive.domain.events import RecordedEvent
from pixlive.realtime.hub import QUEUE_LIMIT, Closed, Hub
from pixlive.realtime.wire import Delivery, bus_message, delivery, parse_bus_message

NOW = datetime(2026, 11, 28, 1, 2, 3, 456000, tzinfo=UTC)


def event(event_id: int, payment_id: str = "p1", kind: str = "payment.created") -> RecordedEvent:
    return RecordedEvent(event_id, kind, payment_id, "ACTIVE", NOW, {"n": event_id})


class Store:
    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []

    async def load(self, payment_id: str | None, after: int, limit: int) -> list[RecordedEvent]:
        found = [e for e in self.events if e.id > after]
        if payment_id is not None:
            found = [e for e in found if e.payment_id == payment_id]
        return found[:limit]


async def started_hub() -> tuple[Hub, Store]:
    store = Store()
    hub = Hub(MemoryBus(), store.load)
    await hub.start()
    return hub, store


async def test_routes_to_the_charge_subscribers_only_and_once() -> None:
    hub, _ = await started_hub()
    mine = hub.subscribe("p1", "websocket")
    other = hub.subscribe("p2", "sse")
    merchant = hub.subscribe(None, "merchant_sse")
    hub.publish_committed([event(1), event(2, "p2")])
    assert [d.id for d in mine.take()] == [1]
    assert [d.id for d in other.take()] == [2]
    assert sorted(d.id for d in merchant.take()) == [1, 2]
    await hub.close()


async def test_wire_format_is_the_event_shape() -> None:
    item = delivery(event(7, kind="payment.paid"))
    assert item.final
    assert item.text.startswith('{"id":7,"type":"payment.paid","payment_id":"p1"')
    assert '"at":"2026-11-28T01:02:03.456Z"' in item.text
    assert item.sse == f"id: 7\nevent: payment.paid\ndata: {item.text}\n\n".encode()
    back = parse_bus_message(bus_message(item))
    assert (back.payment_id, back.id, back.type, back.text) == ("p1", 7, "payment.paid", item.text)


async def test_events_already_sent_are_skipped() -> None:
    hub, _ = await started_hub()
    sub = hub.subscribe("p1", "websocket")
    sub.mark_sent(5)
    hub.publish_committed([event(4), event(5), event(6)])
    assert [d.id for d in sub.take()] == [6]
    await hub.close()


async def test_merchant_stream_keeps_out_of_order_ids() -> None:
    hub, _ = await started_hub()
    merchant = hub.subscribe(None, "merchant_sse")
    hub.publish_committed([event(9, "a")])
    hub.publish_committed([event(8, "b")])  # committed later in another process
    hub.publish_committed([event(9, "a")])  # and a repeat
    assert [d.id for d in merchant.take()] == [9, 8]
    await hub.close()


async def test_a_subscriber_that_cannot_keep_up_is_closed() -> None:
    hub, _ = await started_hub()
    slow = hub.subscribe("p1", "websocket")
    hub.publish_committed([event(i) for i in range(1, QUEUE_LIMIT + 10)])
    assert slow.closed == Closed.SLOW
    assert len(slow.pending) == QUEUE_LIMIT  # bounded: nothing past the limit was kept
    await hub.close()


async def test_wait_wakes_on_offer_and_on_close() -> None:
    hub, _ = await started_hub()
    sub = hub.subscribe("p1", "sse")
    waiting = asyncio.create_task(sub.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    hub.publish_committed([event(1)])
    await asyncio.wait_for(waiting, 1)
    sub.take()
    waiting = asyncio.create_task(sub.wait())
    await asyncio.sleep(0)
    hub.close_subscribers()
    await asyncio.wait_for(waiting, 1)
    assert sub.closed == Closed.SHUTDOWN
    await hub.close()


async def test_catch_up_delivers_what_the_bus_missed() -> None:
    hub, store = await started_hub()
    sub = hub.subscribe("p1", "websocket")
    merchant = hub.subscribe(None, "merchant_sse")
    hub.publish_committed([event(1)])
    sub.take()
    merchant.take()
    # Committed elsewhere while this process's bus connection was down:
    store.events = [event(1), event(2), event(3, "p2")]
    await hub._catch_up()
    assert [d.id for d in sub.take()] == [2]
    assert sorted(d.id for d in merchant.take()) == [2, 3]
    await hub.close()


async def test_unsubscribe_forgets_the_charge() -> None:
    hub, _ = await started_hub()
    sub = hub.subscribe("p1", "poll")
    assert hub.count("p1") == 1
    hub.unsubscribe(sub)
    hub.unsubscribe(sub)  # twice is harmless
    assert hub.count("p1") == 0
    await hub.close()


class BrokerBus(MemoryBus):
    """A bus that reaches other processes: records what the hub publishes, and when."""

    reaches_others = True

    def __init__(self) -> None:
        super().__init__()
        self.round_trips: list[list[bytes]] = []
        self.gate = asyncio.Event()

    async def publish_many(self, messages: Sequence[bytes]) -> None:
        self.round_trips.append(list(messages))
        await self.gate.wait()  # the broker's round trip


async def test_one_process_publishes_nothing_to_itself() -> None:
    bus = MemoryBus()
    seen: list[bytes] = []
    original = bus.publish_many

    async def spy(messages: Sequence[bytes]) -> None:
        seen.extend(messages)
        await original(messages)

    bus.publish_many = spy  # type: ignore[method-assign]
    hub = Hub(bus, Store().load)
    await hub.start()
    mine = hub.subscribe("p1", "websocket")
    hub.publish_committed([event(1)])
    await asyncio.sleep(0.01)
    assert [d.id for d in mine.take()] == [1] and seen == []
    await hub.close()


async def test_what_commits_during_a_round_trip_goes_in_the_next_in_commit_order() -> None:
    bus = BrokerBus()
    hub = Hub(bus, Store().load)
    await hub.start()
    hub.publish_committed([event(1)])
    await asyncio.sleep(0)  # the sender is out with event 1
    hub.publish_committed([event(2), event(3, "p2")])
    hub.publish_committed([event(4)])
    bus.gate.set()
    await hub.close()
    ids = [[parse_bus_message(m).id for m in trip] for trip in bus.round_trips]
    assert ids == [[1], [2, 3, 4]]


async def test_one_process_serialises_only_what_someone_here_listens_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pixlive.realtime.hub as hub_module

    serialised: list[int] = []

    def counting(recorded: RecordedEvent) -> Delivery:
        serialised.append(recorded.id)
        return delivery(recorded)

    monkeypatch.setattr(hub_module, "delivery", counting)
    hub, _ = await started_hub()
    mine = hub.subscribe("p1", "websocket")
    hub.publish_committed([event(1), event(2, "p2")])  # nobody listens to p2
    assert [d.id for d in mine.take()] == [1] and serialised == [1]
    merchant = hub.subscribe(None, "merchant_sse")  # the merchant hears every charge
    hub.publish_committed([event(3, "p3")])
    assert [d.id for d in merchant.take()] == [3] and serialised == [1, 3]
    await hub.close()
