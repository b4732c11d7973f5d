"""The merchant-webhook part of the composition root: the dispatcher built from the
process's writer and database, the httpx sender under the settings' URL policy, the
charge's JSON as the merchant API gives it (`render`, handed in by the API, which the
composition root does not import), and the metrics."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TypeVar

from pixlive import metrics
from pixlive.adapters.database import Database
from pixlive.adapters.repository import Repository
from pixlive.adapters.webhook_sender import HttpSender
from pixlive.adapters.webhook_store import SqlWebhookStore
from pixlive.domain.webhook_url import UrlPolicy
from pixlive.services.unit_of_work import UnitOfWork, jobs
from pixlive.services.webhook_dispatch import Dispatcher, Limits, Observer
from pixlive.services.webhook_payload import RenderCharge
from pixlive.services.webhook_ports import Job
from pixlive.services.writer import Writer
from pixlive.settings import Settings

log = logging.getLogger("pixlive.webhooks")
T = TypeVar("T")


def url_policy(settings: Settings) -> UrlPolicy:
    production = not settings.sandbox
    return UrlPolicy(
        https_only=production, public_only=production and not settings.webhook_allow_private
    )


class WebhookTransactions:
    """The webhook store in the process's transactions: writes as jobs of the group-commit
    writer (so that SQLite's one writer and PostgreSQL's batches serve them too, and an event
    they record is published after the commit), reads on a reader connection."""

    def __init__(self, writer: Writer, db: Database) -> None:
        self.writer = writer
        self.db = db

    async def write(self, job: Job[T]) -> T:
        async def run(uow: UnitOfWork) -> T:
            store = uow.repo
            assert isinstance(store, Repository)  # the SQL stores of adapters/
            return await job(SqlWebhookStore(store.conn, uow.record))

        return await self.writer.run(jobs, run)

    async def read(self, job: Job[T]) -> T:
        async with self.db.read() as reader:
            return await job(SqlWebhookStore(reader.conn))


class Webhooks:
    def __init__(
        self, settings: Settings, writer: Writer, db: Database, render: RenderCharge
    ) -> None:
        self.policy = url_policy(settings)
        self.tx = WebhookTransactions(writer, db)
        scale = settings.webhook_retry_scale
        if scale != 1 and not settings.sandbox:
            log.warning("PIXLIVE_WEBHOOK_RETRY_SCALE is for the sandbox: ignored in production")
            scale = 1.0

        self.render = render
        self.dispatcher = Dispatcher(
            self.tx,
            HttpSender(self.policy),
            render,
            clock=lambda: datetime.now(UTC),
            limits=Limits(
                per_endpoint=settings.webhook_endpoint_concurrency,
                total=settings.webhook_concurrency,
                scale=scale,
            ),
            observer=Observer(attempted=_attempted, queue=_queue),
        )

    async def start(self) -> None:
        await self.dispatcher.start()

    async def close(self) -> None:
        await self.dispatcher.close()


def _attempted(outcome: str, seconds: float) -> None:
    metrics.webhook_attempts.labels(outcome).inc()
    metrics.webhook_attempt_seconds.observe(seconds)


def _queue(depth: int, oldest_seconds: float) -> None:
    metrics.webhook_queue_depth.set(depth)
    metrics.webhook_oldest_pending.set(oldest_seconds)
