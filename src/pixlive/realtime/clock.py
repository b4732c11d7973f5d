"""Time as the connections and their timers see it: injected, so that tests move it by hand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def time(self) -> float:
        """Seconds, monotonic."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Runs `callback` once, `delay` seconds from now, unless cancelled."""


class LoopClock:
    """The running event loop's clock and timers."""

    __slots__ = ()

    def time(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)


LOOP_CLOCK = LoopClock()
