"""The reconciliation sweep of a running process: every PIXLIVE_RECONCILE_SECONDS, GET /pix
over a window that overlaps the last one, each page through the webhook's use case."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

from pixlive import metrics
from pixlive.services.confirmation import IncomingPix, Outcome, confirm
from pixlive.services.errors import DatabaseUnavailable
from pixlive.services.psp_port import Psp, PspError
from pixlive.services.reconcile import Sweep, reconcile, window
from pixlive.services.writer import Writer

log = logging.getLogger("pixlive.reconcile")
# A Pix can show up in GET /pix a little after its horario: each window starts this much
# before where the last one ended.
OVERLAP = timedelta(minutes=2)
FIRST_LOOKBACK = timedelta(hours=24)


def confirmer(writer: Writer) -> Callable[[list[IncomingPix]], asyncio.Future[list[Outcome]]]:
    """The webhook's use case for a page of Pix, as one delivery of the next group commit."""

    def confirm_page(items: list[IncomingPix]) -> asyncio.Future[list[Outcome]]:
        return writer.submit(confirm, items)

    return confirm_page


class Reconciler:
    def __init__(
        self,
        psp: Psp,
        writer: Writer,
        interval: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lock: Callable[[], AbstractAsyncContextManager[bool]] | None = None,
    ) -> None:
        self.psp = psp
        self.lock = lock
        self.interval = interval
        self.clock = clock
        self.confirm = confirmer(writer)
        self.last_end: datetime | None = None
        self.last: Sweep | None = None
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> Sweep | None:
        """A sweep; None when another process holds the sweep's lock (it sweeps instead)."""
        if self.lock is None:
            return await self._sweep()
        async with self.lock() as held:
            return await self._sweep() if held else None

    async def _sweep(self) -> Sweep:
        start, end = window(self.last_end, self.clock(), OVERLAP, FIRST_LOOKBACK)
        sweep = await reconcile(self.psp, self.confirm, start, end)
        self.last_end, self.last = end, sweep
        metrics.reconcile_lag.set((self.clock() - end).total_seconds())
        if sweep.found:
            log.warning("reconciliation found %d Pix that no webhook brought", sweep.found)
        return sweep

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._run(), name="pixlive-reconcile")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep_once()
            except (PspError, DatabaseUnavailable) as exc:
                # The window is kept: the next sweep starts from the last one that worked.
                log.warning("reconciliation sweep failed: %s", exc)
