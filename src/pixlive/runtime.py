"""The process's long-lived parts, started and stopped together: database, group-commit
writer, bus, hub, expiry sweeper. Entry points reach them through this one object."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from pixlive.adapters.apipix.factory import psp_from_settings
from pixlive.adapters.bus import bus_from_url
from pixlive.adapters.database import Database, database_from_url
from pixlive.adapters.errors import DatabaseUnavailable
from pixlive.adapters.group_commit import GroupCommitWriter
from pixlive.adapters.repository import Repository
from pixlive.domain.events import RecordedEvent
from pixlive.psp_runtime import Reconciler
from pixlive.realtime.admission import RateLimit, StreamSlots
from pixlive.realtime.hub import Hub
from pixlive.realtime.keepalive import Keepalive
from pixlive.services.charges import Receiver
from pixlive.services.expiry import expire_due
from pixlive.settings import Settings
from pixlive.testing.faults import crash_after_commit
from pixlive.webhook_runtime import Webhooks

log = logging.getLogger("pixlive")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db: Database = database_from_url(settings.database_url)
        self.hub = Hub(
            bus_from_url(settings.bus_url),
            self.load_events,
            self.newest_event_id,
            relay_interval=settings.relay_seconds,
        )
        self.writer = GroupCommitWriter(self.db, crash_after_commit(self._committed))
        self.webhooks = Webhooks(settings, self.writer, self.db)
        self.psp = psp_from_settings(settings)
        self.reconciler = (
            Reconciler(self.psp, self.writer, settings.reconcile_seconds)
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

    def _committed(self, events: list[RecordedEvent]) -> None:
        self.hub.publish_committed(events)
        if events:
            self.webhooks.dispatcher.wake()

    async def newest_event_id(self) -> int:
        async with self.db.read() as conn:
            return await Repository(conn).last_event_id()

    async def load_events(
        self, payment_id: str | None, after: int, limit: int
    ) -> list[RecordedEvent]:
        async with self.db.read() as conn:
            repo = Repository(conn)
            if payment_id is None:
                return await repo.all_events_after(after, limit)
            return await repo.events_after(payment_id, after, limit)

    async def _sweep(self) -> None:
        interval = self.settings.expiry_sweep_seconds
        while True:
            try:
                while await self.writer.run(lambda uow: expire_due(uow, utcnow())):
                    pass
            except DatabaseUnavailable as exc:
                log.warning("expiry sweep skipped: %s", exc)
            await asyncio.sleep(interval)
