"""Delivering the outbox to the merchant's endpoints, at least once, across restarts and
processes.

One dispatcher per process. Each round, in one transaction, it fans the events committed
since the stored cursor out to deliveries (one per event and endpoint that wants it) and
leases the deliveries now due; then it sends them, at most `per_endpoint` at a time to one
endpoint and `total` in all, and records each attempt and what it decided in a transaction
of its own. The schedule lives in the database (each delivery's next attempt), so a restart
or another process picks up where this one stopped. On PostgreSQL the lease is taken with
FOR UPDATE SKIP LOCKED, so that each attempt is made by one process; a lease that outlives
its process (killed mid-attempt) lapses after `lease` and the attempt is made again.

Event ids are given before commit, so with several writers an id may commit after a higher
one: the cursor only moves over ids that are contiguous, or past a gap older than
GAP_WAIT (an id that was rolled back), and an event read twice makes no second delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as random_module
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from pixlive.domain.webhook_delivery import RESPONSE_KEPT, Answer, Outcome, decide
from pixlive.domain.webhook_endpoint import Endpoint, WebhookEndpointDisabled
from pixlive.domain.webhook_signing import signed_headers
from pixlive.services.webhook_payload import RenderCharge, new_delivery
from pixlive.services.webhook_ports import (
    Attempt,
    Clock,
    Delivery,
    DeliveryKind,
    NewDelivery,
    Sender,
    Transactions,
    WebhookStore,
)

log = logging.getLogger("pixlive.webhooks")

FAN_OUT_BATCH = 500
GAP_WAIT = timedelta(seconds=5)
STATS_EVERY = 5.0  # seconds between counts of the queue for the metrics


@dataclass(frozen=True)
class Limits:
    per_endpoint: int = 4
    total: int = 64
    lease: timedelta = timedelta(minutes=5)
    idle_poll: float = 1.0  # seconds between looks at the database with nothing to wake us
    scale: float = 1.0  # of the retry schedule (tests and demos in the sandbox)


@dataclass
class Observer:
    """Hooks for metrics: each attempt's outcome and latency, the queue after each round."""

    attempted: Callable[[str, float], None] = lambda outcome, seconds: None
    queue: Callable[[int, float], None] = lambda depth, oldest_seconds: None


@dataclass
class Round:
    fanned_out: int = 0
    claimed: list[tuple[Delivery, Endpoint]] = field(default_factory=list)


async def fan_out(
    store: WebhookStore, render: RenderCharge, now: datetime, limit: int = FAN_OUT_BATCH
) -> int:
    """Deliveries for the events past the cursor; how many were made."""
    cursor = await store.take_cursor()
    if cursor is None:
        return 0
    events = await store.events_after(cursor, limit)
    if not events:
        return 0
    endpoints = [e for e in await store.list_endpoints() if e.enabled]
    safe = cursor
    for event in events:
        if event.id == safe + 1 or now - event.at >= GAP_WAIT:
            safe = event.id
        else:
            break
    made: list[NewDelivery] = []
    wanted = [
        (event, endpoint)
        for event in events
        for endpoint in endpoints
        if event.id > endpoint.start_event_id and endpoint.wants(event.type)
    ]
    if wanted:
        charges = await store.charges({event.payment_id for event, _ in wanted if event.payment_id})
        made = [
            new_delivery(
                event, endpoint.id, charges.get(event.payment_id), render, DeliveryKind.EVENT, now
            )
            for event, endpoint in wanted
        ]
    added = await store.add_deliveries(made, now) if made else 0
    if safe != cursor:
        await store.set_cursor(safe)
    return added


async def finish(
    store: WebhookStore,
    delivery: Delivery,
    owner: str,
    answer: Answer,
    now: datetime,
    random: Callable[[], float],
    scale: float,
) -> Outcome:
    """Records one attempt and what it decides for the delivery and its endpoint."""
    endpoint = await store.get_endpoint(delivery.endpoint_id)
    failing_since = endpoint.failing_since if endpoint is not None else None
    decision = decide(
        attempts_made=delivery.attempts,
        answer=answer,
        now=now,
        failing_since=failing_since,
        random=random,
        scale=scale,
    )
    attempt = Attempt(
        delivery_id=delivery.id,
        number=delivery.attempts,
        at=now,
        status_code=answer.status_code,
        error=answer.error,
        latency_ms=answer.latency_ms,
        response=answer.response[:RESPONSE_KEPT],
    )
    if not await store.finish_attempt(
        delivery, owner, attempt, decision.status, decision.next_attempt_at
    ):
        return decision.outcome  # the lease lapsed and another process took it over
    if endpoint is None:
        return decision.outcome
    if decision.disable_endpoint and endpoint.enabled:
        disabled = endpoint.disabled(decision.disable_endpoint, now)
        await store.save_endpoint(disabled)
        await store.cancel_pending(endpoint.id, now)
        await store.record_event(
            WebhookEndpointDisabled(
                payment_id="",
                status="DISABLED",
                at=now,
                data={
                    "endpoint_id": endpoint.id,
                    "url": endpoint.url,
                    "reason": decision.disable_endpoint,
                },
            )
        )
    elif decision.failing_since != endpoint.failing_since and endpoint.enabled:
        await store.save_endpoint(replace(endpoint, failing_since=decision.failing_since))
    return decision.outcome


class Dispatcher:
    def __init__(
        self,
        tx: Transactions,
        sender: Sender,
        render: RenderCharge,
        *,
        clock: Clock,
        limits: Limits | None = None,
        random: Callable[[], float] = random_module.random,
        observer: Observer | None = None,
    ) -> None:
        self.tx = tx
        self.sender = sender
        self.render = render
        self.clock = clock
        self.limits = limits or Limits()
        self.random = random
        self.observer = observer or Observer()
        self.owner = secrets.token_hex(8)
        self._wake = asyncio.Event()
        self._inflight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stats_due = 0.0
        self._loop: asyncio.Task[None] | None = None
        self.sent = 0

    # the loop ----------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="pixlive-webhooks")

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.sender.close()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                done = await self.step()
                pause = 0.0 if done.claimed or done.fanned_out >= FAN_OUT_BATCH else None
                if pause is None:
                    pause = await self._until_next_due()
            except Exception as exc:  # a database outage: try again a little later
                log.warning("webhook dispatch round failed: %s", exc)
                pause = self.limits.idle_poll
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)

    async def _until_next_due(self) -> float:
        now = self.clock()
        due = await self.tx.read(lambda store: store.next_due(now))
        if time.monotonic() >= self._stats_due:
            # A count of the whole queue: once in a while, not every round.
            self._stats_due = time.monotonic() + STATS_EVERY
            stats = await self.tx.read(lambda store: store.queue_stats())
            oldest = (now - stats.oldest_due).total_seconds() if stats.oldest_due else 0.0
            self.observer.queue(stats.pending, max(0.0, oldest))
        wait = (due - now).total_seconds() if due is not None else self.limits.idle_poll
        if wait <= 0:
            # Due, yet not leased: its endpoint is at its limit here (a slot freeing wakes
            # us) or another process holds it.
            return self.limits.idle_poll
        return min(self.limits.idle_poll, wait)

    # one round (what tests drive with a fake clock) --------------------------------------

    async def step(self) -> Round:
        """Fans out, leases what is due and starts sending it; returns what it did."""
        free = self.limits.total - sum(self._inflight.values())

        def room(endpoint_id: str) -> int:
            return self.limits.per_endpoint - self._inflight.get(endpoint_id, 0)

        now = self.clock()
        lease_until = now + self.limits.lease

        async def job(store: WebhookStore) -> Round:
            done = Round(fanned_out=await fan_out(store, self.render, now))
            if free > 0:
                done.claimed = await store.claim(now, lease_until, self.owner, free, room)
            return done

        done = await self.tx.write(job)
        for delivery, endpoint in done.claimed:
            self._inflight[endpoint.id] = self._inflight.get(endpoint.id, 0) + 1
            task = asyncio.get_running_loop().create_task(self._attempt(delivery, endpoint))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return done

    async def idle(self) -> None:
        """Waits until every attempt started has been recorded."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _attempt(self, delivery: Delivery, endpoint: Endpoint) -> None:
        try:
            now = self.clock()
            timestamp = int(now.timestamp())
            body = delivery.payload.encode()
            headers = signed_headers(
                endpoint.signing_secrets(now), delivery.msg_id, timestamp, body
            )
            started = time.perf_counter()
            answer = await self.sender.send(endpoint.url, headers, body)
            seconds = time.perf_counter() - started
            finished = self.clock()

            async def job(store: WebhookStore) -> Outcome:
                return await finish(
                    store, delivery, self.owner, answer, finished, self.random, self.limits.scale
                )

            outcome = await self.tx.write(job)
            self.sent += 1
            self.observer.attempted(outcome.value, seconds)
        except Exception as exc:
            # Left leased: the attempt is made again once the lease lapses.
            log.warning("webhook attempt %s failed to be recorded: %s", delivery.id, exc)
        finally:
            self._inflight[endpoint.id] -= 1
            if not self._inflight[endpoint.id]:
                del self._inflight[endpoint.id]
            self.wake()  # a slot is free: what is due may be leased now
