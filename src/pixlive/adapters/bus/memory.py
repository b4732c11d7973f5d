"""The in-process bus: the default for a single process, so it must cost next to nothing."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pixlive.adapters.bus.base import BusUnavailable, OnMessage, OnReconnect

__all__ = ["MemoryBus"]

log = logging.getLogger(__name__)


class MemoryBus:
    """Delivers each message synchronously, inside `publish`, before it returns.

    Synchronous delivery is the cheapest hand-off there is (no task, no loop turn) and it
    keeps the publisher's order by construction. The subscriber (the hub) therefore runs
    on the publisher's stack: it must not block, which `OnMessage` already requires.
    An exception from the subscriber is logged, not raised to the publisher, as with the
    networked buses, where the two never share a stack.

    Each instance is its own channel: there is no other process to reach. Before `start`
    a message has no subscriber and is dropped, like a pub/sub message nobody listens to.
    """

    reconnects: int
    reaches_others = False

    def __init__(self) -> None:
        self.reconnects = 0  # there is no connection to lose
        self._on_message: OnMessage | None = None
        self._started = False
        self._closed = False

    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect) -> None:
        if self._closed:
            raise BusUnavailable("bus is closed")
        if self._started:
            raise RuntimeError("bus already started")
        self._started = True
        self._on_message = on_message

    async def publish(self, message: bytes) -> None:
        on_message = self._on_message
        if on_message is None:
            if self._closed:
                raise BusUnavailable("bus is closed")
            return
        try:
            on_message(message)
        except Exception:
            log.exception("bus subscriber failed on a message")

    async def publish_many(self, messages: Sequence[bytes]) -> None:
        for message in messages:
            await self.publish(message)

    async def ping(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        self._closed = True
        self._on_message = None
