"""One hub per process: one bus subscription, routing each event to the local subscribers
of its charge (and to the merchant streams).

Events reach the hub twice on purpose: straight from this process's commit (the fastest
path to a page held here) and back through the bus (the path to every other process).
Each subscriber remembers the last id it was given, so the echo costs a comparison.
The bus may drop messages; when its connection comes back the hub reads what it missed
from the database, which is the truth.

Two losses give the bus no chance to tell: a process that dies between its COMMIT and
its publish, and a bus connection gone silent without closing (a partition). For both,
the relay reads the events table past the newest id this hub has heard of, whenever the
bus has been quiet for an interval (and at least every RELAY_MAX_GAP seconds even when
it has not): on an idle process, one probe of the newest id twice a second. Not found
this way: a dead process's event whose id is below one already heard of (another process
committed a later id in that same moment); its page learns at its next reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

from pixlive import metrics
from pixlive.adapters.bus import Bus, BusUnavailable
from pixlive.adapters.errors import DatabaseUnavailable
from pixlive.domain.events import RecordedEvent
from pixlive.realtime.wire import Delivery, bus_message, delivery, parse_bus_message

log = logging.getLogger("pixlive.hub")

QUEUE_LIMIT = 256
CATCH_UP_PAGE = 1000
MERCHANT_MEMORY = 4096
RELAY_INTERVAL = 0.5
# A bus busy with other traffic proves nothing about our events: read at least this often.
RELAY_MAX_GAP = 1.0

LoadEvents = Callable[[str | None, int, int], Awaitable[list[RecordedEvent]]]
"""(payment id or None for all, after id, limit) → events from the database."""

NewestEventId = Callable[[], Awaitable[int]]
"""→ the newest event id in the database (0 when there is none)."""


class Closed:
    SLOW = "slow"
    SHUTDOWN = "shutdown"


class Subscriber:
    """A bounded mailbox with a wake-up, not a task: an idle subscriber costs a few objects.

    A subscriber that cannot keep up is closed (its client resumes by id) rather than
    let the server's memory grow.
    """

    __slots__ = (
        "_seen",
        "_waiter",
        "closed",
        "last_id",
        "on_ready",
        "payment_id",
        "pending",
        "transport",
    )

    def __init__(self, payment_id: str | None, transport: str) -> None:
        self.payment_id = payment_id
        self.transport = transport
        self.pending: deque[Delivery] = deque()
        self.last_id = 0  # the newest id handed over, live or read from the database
        self.closed: str | None = None
        self.on_ready: Callable[[], None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        # Merchant streams see many charges, whose ids may commit out of order across
        # processes, so they remember recent ids instead of only the newest.
        self._seen: OrderedDict[int, None] | None = OrderedDict() if payment_id is None else None

    def offer(self, item: Delivery) -> None:
        if self.closed is not None:
            return
        if self._seen is None:
            if item.id <= self.last_id:
                return
        elif item.id in self._seen:
            return
        self.mark_sent(item.id)
        if len(self.pending) >= QUEUE_LIMIT:
            metrics.subscribers_dropped.inc()
            self.close(Closed.SLOW)
            return
        self.pending.append(item)
        self._wake()

    def mark_sent(self, event_id: int) -> None:
        """An id handed over (or read from the database by the stream): skip live copies."""
        if self._seen is not None:
            self._seen[event_id] = None
            if len(self._seen) > MERCHANT_MEMORY:
                self._seen.popitem(last=False)
        if event_id > self.last_id:
            self.last_id = event_id

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
            self._wake()

    def take(self) -> list[Delivery]:
        items = list(self.pending)
        self.pending.clear()
        return items

    async def wait(self) -> None:
        """Returns when there is something to take, or the subscriber is closed."""
        if self.pending or self.closed is not None:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self.on_ready is not None:
            self.on_ready()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Hub:
    def __init__(
        self,
        bus: Bus,
        load_events: LoadEvents,
        newest_event_id: NewestEventId | None = None,
        *,
        relay_interval: float = RELAY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.load_events = load_events
        self._by_payment: dict[str, set[Subscriber]] = {}
        self._merchant: set[Subscriber] = set()
        self._outbox: list[Delivery] = []
        self._sender: asyncio.Task[None] | None = None
        self._newest_event_id = newest_event_id
        self._relay_interval = relay_interval
        self._clock = clock
        self._relay_task: asyncio.Task[None] | None = None
        self.newest: int | None = None  # the newest event id heard of, once known
        self._verified = 0  # the newest id the relay found in the database
        self._heard_at = clock()  # the bus's last message
        self._relayed_at = clock()  # the relay's last read
        self.relay_reads = 0

    async def start(self) -> None:
        await self.bus.start(self._on_message, self._catch_up)
        if (
            self.bus.reaches_others
            and self._newest_event_id is not None
            and self._relay_interval > 0
        ):
            with contextlib.suppress(DatabaseUnavailable):  # else the relay's first turn
                self.newest = self._verified = await self._newest_event_id()
            self._relay_task = asyncio.get_running_loop().create_task(
                self._run_relay(), name="pixlive-relay"
            )

    def close_subscribers(self, reason: str = Closed.SHUTDOWN) -> None:
        for group in [*self._by_payment.values(), self._merchant]:
            for subscriber in list(group):
                subscriber.close(reason)

    async def close(self) -> None:
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
            self._relay_task = None
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)
        self.close_subscribers()
        await self.bus.close()

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
            if subscriber not in self._merchant:
                return
            self._merchant.discard(subscriber)
        else:
            group = self._by_payment.get(subscriber.payment_id)
            if group is None or subscriber not in group:
                return
            group.discard(subscriber)
            if not group:
                del self._by_payment[subscriber.payment_id]
        metrics.subscribers.labels(subscriber.transport).dec()

    def count(self, payment_id: str) -> int:
        return len(self._by_payment.get(payment_id, ()))

    # events in -------------------------------------------------------------------------

    def publish_committed(self, events: list[RecordedEvent]) -> None:
        """Called by the writer after each commit: deliver here now, tell the others."""
        metrics.events_published.inc(len(events))
        if not self.bus.reaches_others:
            # One process: the bus would only echo back what is delivered here, and an
            # event nobody here listens to need not be serialised at all.
            by_payment, merchant = self._by_payment, self._merchant
            for event in events:
                if merchant or event.payment_id in by_payment:
                    self._route(delivery(event))
            return
        items = [delivery(event) for event in events]
        for item in items:
            self._route(item)
        self._outbox.extend(items)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        """One sender, so the bus gets the events in commit order; what commits while a
        round trip is out goes in the next one, together."""
        try:
            while self._outbox:
                items, self._outbox = self._outbox, []
                try:
                    await self.bus.publish_many([bus_message(item) for item in items])
                except BusUnavailable as exc:
                    # The events are committed; other processes catch up when their bus
                    # returns.
                    log.warning("bus publish failed: %s", exc)
        finally:
            self._sender = None

    def _on_message(self, message: bytes) -> None:
        self._heard_at = self._clock()
        try:
            item = parse_bus_message(message)
        except ValueError:
            log.warning("ignored a malformed bus message")
            return
        self._route(item)

    def _route(self, item: Delivery) -> None:
        newest = self.newest
        if newest is not None and item.id > newest:
            self.newest = item.id
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

    # the relay ---------------------------------------------------------------------------

    async def _run_relay(self) -> None:
        while True:
            await asyncio.sleep(self._relay_interval)
            try:
                await self.relay()
            except DatabaseUnavailable as exc:
                log.debug("relay skipped: %s", exc)
            except Exception:
                log.exception("relay failed")

    async def relay(self) -> int:
        """One turn of the relay: when the bus has been quiet for an interval (or the last
        read is RELAY_MAX_GAP old), route what the events table holds past the newest id
        heard of. Returns how many events it read."""
        assert self._newest_event_id is not None
        now = self._clock()
        quiet = now - self._heard_at >= self._relay_interval
        # Turns come on the interval's ticks, a little late or early: a tenth of slack keeps
        # a busy bus's reads one gap apart instead of one gap and a tick.
        if not quiet and now - self._relayed_at < RELAY_MAX_GAP * 0.9:
            return 0
        self._relayed_at = now
        # The newest id in the database: one probe of the primary key's index. Equal to
        # the newest heard of, the usual answer, it costs nothing more.
        top = await self._newest_event_id()
        newest = self.newest
        if newest is None or top == newest:
            # Anything older was in the database before a subscriber here could miss it:
            # every stream starts from the database.
            self.newest = self._verified = top
            return 0
        # Below what the bus said: that id was another deployment's, on a shared broker
        # and channel. Read from the last id this turn found in our own table instead.
        after = newest if top > newest else self._verified
        self.relay_reads += 1
        events = await self.load_events(None, after, CATCH_UP_PAGE)
        for event in events:
            self._route(delivery(event))
        read_to = events[-1].id if events else after
        self._verified = max(top, read_to) if len(events) < CATCH_UP_PAGE else read_to
        if top < newest:
            self.newest = self._verified
        if events:
            log.info("relay: %d event(s) the bus did not bring, up to id %d", len(events), read_to)
        return len(events)
