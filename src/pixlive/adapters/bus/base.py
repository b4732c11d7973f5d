"""The event bus contract, and the reconnect loop shared by the networked buses.

A bus only wakes listeners up: it may drop a message (Redis pub/sub and
LISTEN/NOTIFY both can), and the database stays the source of truth. What a bus
promises is narrower and easier to keep:

- every message it does deliver reaches `on_message` once, in the order received;
- after any gap it could not see (a lost connection, or a broker that was down when
  `start` ran), it awaits `on_reconnect` once it is subscribed again, so the hub can
  catch up from the database;
- no `on_message` call happens while `on_reconnect` runs: what arrives meanwhile is
  held and delivered right after it returns, still in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

__all__ = [
    "DEFAULT_CHANNEL",
    "Backoff",
    "Bus",
    "BusUnavailable",
    "OnMessage",
    "OnReconnect",
    "SupervisedBus",
    "close_quietly",
]

log = logging.getLogger(__name__)

DEFAULT_CHANNEL = "pixlive.events"

OnMessage = Callable[[bytes], None]
"""Called on the event loop for each message, in the order received."""

OnReconnect = Callable[[], Awaitable[None]]
"""Awaited after a lost connection is re-established and re-subscribed."""


class BusUnavailable(Exception):
    """The broker could not be reached. Callers log it and go on: the database is the truth."""


class Bus(Protocol):
    """One subscription per process, on one channel; the hub routes by payment itself."""

    @property
    def reconnects(self) -> int:
        """How many times the subscription was re-established (for metrics)."""
        ...

    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect) -> None:
        """Connect and subscribe.

        Returns once subscribed when the broker is up. Never fails because the broker is
        down: it then returns after the first failed attempt and keeps retrying in the
        background; the first later success counts as a reconnect and awaits
        `on_reconnect`, since messages may have been published in between.
        """
        ...

    @property
    def reaches_others(self) -> bool:
        """Whether other processes listen: if not, publishing would only echo to oneself."""
        ...

    async def publish(self, message: bytes) -> None:
        """Best effort; raises `BusUnavailable` when the broker fails (or the bus is closed)."""
        ...

    async def publish_many(self, messages: Sequence[bytes]) -> None:
        """`publish` for each message, in order, in one round trip to the broker."""
        ...

    async def ping(self) -> bool:
        """Whether the broker is reachable now (for /readyz). Never raises."""
        ...

    async def close(self) -> None:
        """Stop listening and release connections. Idempotent."""
        ...


class Backoff:
    """Jittered exponential delays, so that many workers do not reconnect in lockstep."""

    def __init__(self, initial: float = 0.05, maximum: float = 2.0) -> None:
        self._initial = initial
        self._maximum = maximum
        self._current = initial

    @property
    def maximum(self) -> float:
        return self._maximum

    def next(self) -> float:
        delay = self._current
        self._current = min(delay * 2, self._maximum)
        # "Equal jitter": never less than half the nominal delay, so a flapping broker
        # still gets some rest, but spread enough to break synchronisation.
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self._current = self._initial


class SupervisedBus(ABC):
    """The connect → serve → back off → reconnect loop, for buses with a real broker.

    Subclasses provide one subscription session (`_connect`, `_serve`, `_disconnect`)
    and the publishing side; this class owns the task, the backoff, the `reconnects`
    count, `on_reconnect` and the holding of messages while it runs.
    """

    reaches_others = True

    def __init__(self) -> None:
        self.reconnects = 0
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._on_message: OnMessage | None = None
        self._on_reconnect: OnReconnect | None = None
        self._held: list[bytes] | None = None
        self._backoff = Backoff()

    @property
    def closed(self) -> bool:
        return self._closed

    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect) -> None:
        if self._closed:
            raise BusUnavailable("bus is closed")
        if self._task is not None:
            raise RuntimeError("bus already started")
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        first_attempt: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(
            self._supervise(first_attempt), name=f"{type(self).__name__}.supervise"
        )
        await first_attempt

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            # asyncio.wait, unlike awaiting the task, lets a cancellation of close()
            # itself propagate instead of being mistaken for the task's own.
            await asyncio.wait([task])
        await self._disconnect()
        await self._close_publisher()

    def _deliver(self, message: bytes) -> None:
        """Hand one received message to the subscriber; for subclasses' receive paths."""
        held = self._held
        if held is not None:
            held.append(message)
            return
        on_message = self._on_message
        if on_message is None:
            return
        try:
            on_message(message)
        except Exception:
            # A faulty subscriber must not kill the connection that serves every other one.
            log.exception("bus subscriber failed on a message")

    async def _supervise(self, first_attempt: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        announce = False
        try:
            while not self._closed:
                if announce:
                    self._held = []
                try:
                    await self._connect()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._held = None
                    log.warning("%s: cannot subscribe: %r", type(self).__name__, exc)
                    await self._disconnect()
                    if not first_attempt.done():
                        first_attempt.set_result(None)
                    announce = True
                    await asyncio.sleep(self._backoff.next())
                    continue

                if announce:
                    self.reconnects += 1
                    log.info("%s: subscribed again, catching up", type(self).__name__)
                    await self._run_on_reconnect()
                announce = True
                if not first_attempt.done():
                    first_attempt.set_result(None)

                began = loop.time()
                try:
                    await self._serve()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("%s: subscription lost: %r", type(self).__name__, exc)
                else:
                    log.warning("%s: subscription lost", type(self).__name__)
                await self._disconnect()
                # Only a session that lived a while earns a fresh backoff; otherwise a
                # broker that accepts and then drops at once would be hammered.
                if loop.time() - began > self._backoff.maximum:
                    self._backoff.reset()
                await asyncio.sleep(self._backoff.next())
        finally:
            self._held = None
            if not first_attempt.done():
                first_attempt.set_result(None)

    async def _run_on_reconnect(self) -> None:
        on_reconnect = self._on_reconnect
        try:
            if on_reconnect is not None:
                await on_reconnect()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("bus on_reconnect callback failed")
        finally:
            held, self._held = self._held, None
        for message in held or ():
            self._deliver(message)

    @abstractmethod
    async def _connect(self) -> None:
        """Open the listening connection and subscribe; raise if that fails."""

    @abstractmethod
    async def _serve(self) -> None:
        """Receive until the connection is lost (return or raise); call `_deliver`."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Drop the listening connection, if any. Never raises."""

    @abstractmethod
    async def _close_publisher(self) -> None:
        """Release the publishing side. Never raises."""


async def close_quietly(closer: Awaitable[object], within: float) -> None:
    """Await a close that may hang or fail on a dead connection; neither matters then."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(closer, within)
