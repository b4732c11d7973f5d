"""One hub per process: one bus subscription, routing each event to the local subscribers
of its charge (and to the merchant streams).

Events reach the hub twice on purpose: straight from this process's commit (the fastest
path to a page held here) and back through the bus (the path to every other process).
Each subscriber remembers the last id it was given, so the echo costs a comparison.
The bus may drop messages; when its connection comes back the hub reads what it missed
from the database, which is the truth.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from pixlive import metrics
from pixlive.adapters.bus import Bus, BusUnavailable
from pixlive.domain.events import RecordedEvent
from pixlive.realtime.wire import Delivery, bus_message, delivery, parse_bus_message

log = logging.getLogger("pixlive.hub")

QUEUE_LIMIT = 256
CATCH_UP_PAGE = 1000

LoadEvents = Callable[[str | None, int, int], Awaitable[list[RecordedEvent]]]
"""(payment id or None for all, after id, limit) → events from the database."""


class Subscriber:
    """A bounded mailbox; a subscriber that cannot keep up is dropped (it resumes by id)."""

    def __init__(self, payment_id: str | None, transport: str, limit: int = QUEUE_LIMIT) -> None:
        self.payment_id = payment_id
        self.transport = transport
        self.queue: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self.limit = limit
        self.last_id = 0  # the newest id handed to this subscriber, live or from backlog
        self.dropped = False
        # Merchant streams see many charges, whose ids may commit out of order across
        # processes, so they remember recent ids instead of only the newest.
        self._seen: OrderedDict[int, None] | None = OrderedDict() if payment_id is None else None

    def offer(self, item: Delivery) -> None:
        if self.dropped:
            return
        if self._seen is None:
            if item.id <= self.last_id:
                return
            self.last_id = item.id
        else:
            if item.id in self._seen:
                return
            self._seen[item.id] = None
            if len(self._seen) > 4096:
                self._seen.popitem(last=False)
            self.last_id = max(self.last_id, item.id)
        if self.queue.qsize() >= self.limit:
            self.dropped = True
            metrics.subscribers_dropped.inc()
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(item)

    def mark_sent(self, event_id: int) -> None:
        """Backlog read from the database counts as delivered, so live copies are skipped."""
        if self._seen is not None:
            self._seen[event_id] = None
        self.last_id = max(self.last_id, event_id)


class Hub:
    def __init__(self, bus: Bus, load_events: LoadEvents) -> None:
        self.bus = bus
        self.load_events = load_events
        self._by_payment: dict[str, set[Subscriber]] = {}
        self._merchant: set[Subscriber] = set()
        self._publishing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.bus.start(self._on_message, self._catch_up)

    async def close(self) -> None:
        if self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)
        await self.bus.close()
        for subscribers in [*self._by_payment.values(), self._merchant]:
            for subscriber in subscribers:
                subscriber.queue.put_nowait(None)

    # subscriptions ---------------------------------------------------------------------

    def subscribe(self, payment_id: str | None, transport: str) -> Subscriber:
        subscriber = Subscriber(payment_id, transport)
        if payment_id is None:
            self._merchant.add(subscriber)
        else:
            self._by_payment.setdefault(payment_id, set()).add(subscriber)
        metrics.subscribers.labels(transport).inc()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber.payment_id is None:
            self._merchant.discard(subscriber)
        else:
            group = self._by_payment.get(subscriber.payment_id)
            if group is not None:
                group.discard(subscriber)
                if not group:
                    del self._by_payment[subscriber.payment_id]
        metrics.subscribers.labels(subscriber.transport).dec()

    def count(self, payment_id: str) -> int:
        return len(self._by_payment.get(payment_id, ()))

    # events in -------------------------------------------------------------------------

    def publish_committed(self, events: list[RecordedEvent]) -> None:
        """Called by the writer after each commit: deliver here now, tell the others."""
        items = [delivery(event) for event in events]
        for item in items:
            self._route(item)
        metrics.events_published.inc(len(items))
        task = asyncio.get_running_loop().create_task(self._publish(items))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, items: list[Delivery]) -> None:
        for item in items:
            try:
                await self.bus.publish(bus_message(item))
            except BusUnavailable as exc:
                # The events are committed; other processes catch up when their bus returns.
                log.warning("bus publish failed: %s", exc)
                return

    def _on_message(self, message: bytes) -> None:
        try:
            item = parse_bus_message(message)
        except ValueError:
            log.warning("ignored a malformed bus message")
            return
        self._route(item)

    def _route(self, item: Delivery) -> None:
        group = self._by_payment.get(item.payment_id)
        if group:
            for subscriber in tuple(group):
                subscriber.offer(item)
        for subscriber in tuple(self._merchant):
            subscriber.offer(item)

    async def _catch_up(self) -> None:
        """After a bus outage: read from the database what every local subscriber missed."""
        metrics.bus_reconnects.set(self.bus.reconnects)
        for payment_id, group in list(self._by_payment.items()):
            after = min((s.last_id for s in group), default=0)
            for event in await self.load_events(payment_id, after, CATCH_UP_PAGE):
                self._route(delivery(event))
        if self._merchant:
            after = min(s.last_id for s in self._merchant)
            # Merchant streams dedupe by id, so re-reading a margin below the newest id
            # also recovers events that committed out of id order in another process.
            for event in await self.load_events(None, max(0, after - 1000), CATCH_UP_PAGE * 10):
                self._route(delivery(event))
