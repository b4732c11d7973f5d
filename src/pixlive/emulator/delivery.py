"""Webhook deliveries to `{webhookUrl}/pix`, as a PSP makes them: over mTLS with the PSP's
client certificate, Pix of the same key batched into one call, retried with backoff until a
2xx; and, for testing what the receiver does when a PSP misbehaves, knobs that delay,
duplicate or drop a chosen share of them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from pixlive.emulator.profiles import Profile, webhook_body
from pixlive.emulator.state import Ledger, Pix

log = logging.getLogger("pixlive.emulator.delivery")


@dataclass
class Knobs:
    drop: float = 0.0  # share of Pix never notified
    duplicate: float = 0.0  # share of Pix notified twice
    delay: float = 0.0  # seconds before each delivery
    refund_fail: bool = False  # devoluções end NAO_REALIZADO
    refund_seconds: float = 0.2  # how long a devolução stays EM_PROCESSAMENTO
    down: bool = False  # the API answers 503 ServicoIndisponivel


@dataclass
class Stats:
    delivered: int = 0  # Pix in 2xx deliveries
    dropped: int = 0
    duplicated: int = 0
    attempts: int = 0
    failures: int = 0
    last_status: int | None = None
    bodies: list[Any] = field(default_factory=list)


class Deliverer:
    def __init__(
        self,
        ledger: Ledger,
        profile: Profile,
        knobs: Knobs,
        tls: ssl.SSLContext,
        *,
        batch_seconds: float = 0.05,
        max_batch: int = 100,
        backoff: tuple[float, ...] = (0.2, 0.5, 1, 2, 5, 10),
        rng: random.Random | None = None,
    ) -> None:
        self.ledger = ledger
        self.profile = profile
        self.knobs = knobs
        self.stats = Stats()
        self._tls = tls
        self._batch_seconds = batch_seconds
        self._max_batch = max_batch
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[Pix] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def enqueue(self, pix: Pix) -> None:
        self._queue.put_nowait(pix)

    async def start(self) -> None:
        self._client = httpx.AsyncClient(verify=self._tls, timeout=10)
        self._task = asyncio.create_task(self._run(), name="emulator-delivery")

    async def close(self) -> None:
        for task in [self._task, *self._sends]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._batch_seconds
            while len(batch) < self._max_batch:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except TimeoutError:
                    break
            chosen: list[Pix] = []
            for pix in batch:
                if self._rng.random() < self.knobs.drop:
                    self.stats.dropped += 1
                    continue
                chosen.append(pix)
                if self._rng.random() < self.knobs.duplicate:
                    self.stats.duplicated += 1
                    chosen.append(pix)
            if not chosen:
                continue
            task = asyncio.create_task(self._send([p.body() for p in chosen]))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def _send(self, items: list[dict[str, Any]]) -> None:
        webhook = self.ledger.webhooks.get(self.ledger.chave)
        if webhook is None:
            return  # nobody to tell: the Pix stays in GET /pix for whoever asks
        if self.knobs.delay:
            await asyncio.sleep(self.knobs.delay)
        body = webhook_body(self.profile, items)
        content = orjson.dumps(body)
        # The spec appends /pix to the registered URL as text, query string and all (so a
        # URL ending in `?ignorar=` gets `/pix` inside that parameter, as Efí documents).
        url = webhook.url + "/pix" if "?" in webhook.url else webhook.url.rstrip("/") + "/pix"
        assert self._client is not None
        for attempt, pause in enumerate((*self._backoff, None)):
            self.stats.attempts += 1
            try:
                answer = await self._client.post(
                    url, content=content, headers={"Content-Type": "application/json"}
                )
                self.stats.last_status = answer.status_code
                if 200 <= answer.status_code < 300:
                    self.stats.delivered += len(items)
                    self.stats.bodies.append(body)
                    del self.stats.bodies[:-50]
                    return
                log.warning("delivery %d to %s: %d", attempt + 1, url, answer.status_code)
            except httpx.HTTPError as exc:
                log.warning("delivery %d to %s failed: %s", attempt + 1, url, exc)
            self.stats.failures += 1
            if pause is None:
                log.error("giving up a delivery of %d Pix to %s", len(items), url)
                return
            await asyncio.sleep(pause)
