"""The hub routes each event to its charge's subscribers once, drops the slow, and catches
up from the database after a bus outage."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from pixlive.adapters.bus.memory import MemoryBus
from pixlive.adapters.errors import DatabaseUnavailable
from pixlive.domain.events import RecordedEvent
from pixlive.realtime.hub import QUEUE_LIMIT, RELAY_MAX_GAP, Closed, Hub
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


# the relay: events that no bus brought --------------------------------------------------


class SilentBus(MemoryBus):
    """A bus to other processes that brings nothing: a publisher that died between COMMIT
    and publish, or a connection partitioned without closing, look like this."""

    reaches_others = True

    async def publish(self, message: bytes) -> None:
        pass

    def deliver(self, message: bytes) -> None:
        assert self._on_message is not None
        self._on_message(message)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


INTERVAL = 0.5


async def relayed_hub(events: list[RecordedEvent]) -> tuple[Hub, Store, SilentBus, Clock]:
    store, bus, clock = Store(), SilentBus(), Clock()
    store.events = list(events)

    async def newest() -> int:
        return max((e.id for e in store.events), default=0)

    # The relay's own task waits an hour: these tests turn it by hand, on their clock.
    hub = Hub(bus, store.load, newest, relay_interval=3600, clock=clock)
    await hub.start()
    hub._relay_interval = INTERVAL
    return hub, store, bus, clock


async def test_the_relay_delivers_what_another_process_committed_but_never_published() -> None:
    hub, store, _, clock = await relayed_hub([event(1), event(2, "p2")])
    assert hub.newest == 2  # what was there before start is every stream's own snapshot
    page = hub.subscribe("p1", "websocket")
    merchant = hub.subscribe(None, "merchant_sse")
    store.events.append(event(3, kind="payment.paid"))  # its process died after COMMIT

    clock.now += INTERVAL
    assert await hub.relay() == 1
    assert [(d.id, d.type) for d in page.take()] == [(3, "payment.paid")]
    assert [d.id for d in merchant.take()] == [3]
    assert hub.newest == 3

    clock.now += INTERVAL  # nothing new: the probe of the newest id, and no read
    assert await hub.relay() == 0
    assert hub.relay_reads == 1
    await hub.close()


async def test_the_relay_stays_away_while_the_bus_is_talking_but_not_for_long() -> None:
    hub, store, bus, clock = await relayed_hub([])
    page = hub.subscribe("p1", "websocket")
    store.events.append(event(1))  # lost: its publisher died
    for _ in range(3):
        clock.now += INTERVAL / 2
        bus.deliver(bus_message(delivery(event(99, "busy"))))  # other traffic on the bus
        assert await hub.relay() == 0
    assert hub.relay_reads == 0 and not page.pending
    # However busy the bus, the table is read at least every RELAY_MAX_GAP seconds.
    clock.now += RELAY_MAX_GAP
    bus.deliver(bus_message(delivery(event(100, "busy"))))
    await hub.relay()
    assert hub.relay_reads == 1
    await hub.close()


async def test_what_the_bus_or_this_process_delivered_is_not_read_again() -> None:
    hub, store, bus, clock = await relayed_hub([])
    page = hub.subscribe("p1", "websocket")
    store.events += [event(1), event(2)]
    hub.publish_committed([event(1)])  # committed here
    bus.deliver(bus_message(delivery(event(2))))  # heard from another process
    assert [d.id for d in page.take()] == [1, 2]
    clock.now += INTERVAL
    assert await hub.relay() == 0  # read past id 2: nothing
    assert not page.pending
    await hub.close()


async def test_the_relay_learns_the_newest_id_late_when_the_database_was_down() -> None:
    store, bus, clock = Store(), SilentBus(), Clock()
    store.events = [event(1)]
    down = True

    async def newest() -> int:
        if down:
            raise DatabaseUnavailable("down")
        return max(e.id for e in store.events)

    hub = Hub(bus, store.load, newest, relay_interval=3600, clock=clock)
    await hub.start()  # starts all the same
    assert hub.newest is None
    down = False
    clock.now += 3600
    assert await hub.relay() == 0 and hub.newest == 1
    store.events.append(event(2))
    clock.now += 3600
    assert await hub.relay() == 1
    await hub.close()


async def test_a_process_alone_runs_no_relay() -> None:
    async def newest() -> int:
        raise AssertionError("a lone process has no one else's events to relay")

    hub = Hub(MemoryBus(), Store().load, newest)
    await hub.start()
    assert hub._relay_task is None
    await hub.close()


async def test_a_bigger_id_from_another_deployment_on_the_bus_does_not_blind_the_relay() -> None:
    hub, store, bus, clock = await relayed_hub([event(1)])
    page = hub.subscribe("p1", "websocket")
    # Another deployment publishes on the same broker and channel, ids of its own database.
    bus.deliver(bus_message(delivery(event(10**9, "theirs"))))
    store.events.append(event(2, kind="payment.paid"))  # ours: its process died after COMMIT
    clock.now += RELAY_MAX_GAP
    assert await hub.relay() == 1
    assert [d.id for d in page.take()] == [2]
    assert hub.newest == 2
    await hub.close()
