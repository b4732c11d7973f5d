"""The composition root: the one place that builds the process's parts and wires them
together (database, clock, writer, bus, hub, expiry sweeper), starts and stops them.
Entry points (api/, cli.py) reach the services through this one object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from pixlive.adapters.apipix.factory import psp_from_settings
from pixlive.adapters.bus import bus_from_url
from pixlive.adapters.clock import SystemClock
from pixlive.adapters.database import Database, database_from_url
from pixlive.adapters.sweep_lock import sweep_lock
from pixlive.domain.events import RecordedEvent
from pixlive.psp_runtime import Reconciler
from pixlive.realtime.admission import RateLimit, StreamSlots
from pixlive.realtime.hub import Hub
from pixlive.realtime.keepalive import Keepalive
from pixlive.services import events
from pixlive.services.charges import Receiver
from pixlive.services.errors import DatabaseUnavailable
from pixlive.services.expiry import expire_due
from pixlive.services.ports import Clock
from pixlive.services.unit_of_work import jobs
from pixlive.services.webhook_payload import RenderCharge
from pixlive.services.writer import OnCommit, Writer
from pixlive.settings import Settings
from pixlive.testing.faults import crash_after_commit
from pixlive.webhook_runtime import Webhooks

log = logging.getLogger("pixlive")


class Runtime:
    def __init__(
        self, settings: Settings, *, render_charge: RenderCharge, clock: Clock | None = None
    ) -> None:
        """`render_charge`: a charge as the merchant API shows it (for merchant webhooks)."""
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.db: Database = database_from_url(settings.database_url)
        self.hub = Hub(
            bus_from_url(settings.bus_url),
            self.load_events,
            self.newest_event_id,
            relay_interval=settings.relay_seconds,
        )
        # What the writer calls once a batch is durable: one function, to wrap if need be.
        events_committed: OnCommit = crash_after_commit(self.events_committed)
        self.writer = Writer(self.db, self.clock, events_committed)
        self.webhooks = Webhooks(settings, self.writer, self.db, render_charge)
        self.psp = psp_from_settings(settings)
        self.reconciler = (
            Reconciler(
                self.psp,
                self.writer,
                settings.reconcile_seconds,
                self.clock.now,
                lock=lambda: sweep_lock(self.db),
            )
            if self.psp is not None
            else None
        )
        self.receiver = Receiver(
            pix_key=settings.receiver_pix_key,
            name=settings.receiver_name,
            city=settings.receiver_city,
        )
        self.streams = StreamSlots(settings.max_streams_per_client, settings.max_streams_total)
        self.create_rate = RateLimit(settings.create_rate_per_second, settings.create_burst)
        self.keepalive = Keepalive(settings.ws_ping_seconds)
        self.sse_keepalive = Keepalive(settings.sse_keepalive_seconds)
        self._sweeper: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        await self.db.start()
        await self.writer.start()
        await self.hub.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="pixlive-expiry")
        await self.webhooks.start()
        if self.reconciler is not None:
            self.reconciler.start()

    async def close(self) -> None:
        self.stopping.set()
        self.keepalive.stop()
        self.sse_keepalive.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.webhooks.close()
        if self.reconciler is not None:
            await self.reconciler.close()
        if self.psp is not None:
            await self.psp.close()
        await self.writer.close()
        await self.hub.close()
        await self.db.close()

    def events_committed(self, events: list[RecordedEvent]) -> None:
        """A batch's events, once its COMMIT returned: to this process's pages and the
        others' (the hub), and to the merchant webhooks' dispatcher."""
        self.hub.publish_committed(events)
        if events:
            self.webhooks.dispatcher.wake()

    async def newest_event_id(self) -> int:
        async with self.db.read() as queries:
            return await events.last_event_id(queries)

    async def load_events(
        self, payment_id: str | None, after: int, limit: int
    ) -> list[RecordedEvent]:
        async with self.db.read() as queries:
            if payment_id is None:
                return await events.all_events_after(queries, after, limit)
            return await events.events_after(queries, payment_id, after, limit)

    async def _sweep(self) -> None:
        interval = self.settings.expiry_sweep_seconds
        while True:
            try:
                while await self.writer.run(jobs, lambda uow: expire_due(uow, self.clock.now())):
                    pass
            except DatabaseUnavailable as exc:
                log.warning("expiry sweep skipped: %s", exc)
            await asyncio.sleep(interval)


class Offline:
    """The database and a writer, without bus, hub or sweeper: for commands that write
    once and exit (`pixlive apikey`, the bench's seeding).

        async with Offline(settings) as offline:
            await offline.writer.run(jobs, job)
    """

    def __init__(self, settings: Settings) -> None:
        self.clock: Clock = SystemClock()
        self.db: Database = database_from_url(settings.database_url)
        self.writer = Writer(self.db, self.clock, lambda events: None)

    async def __aenter__(self) -> Offline:
        await self.db.start()
        await self.writer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.writer.close()
        await self.db.close()
