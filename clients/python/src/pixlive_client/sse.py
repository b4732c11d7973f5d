"""Server-Sent Events, parsed from lines: each frame's id, event name and data."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Frame:
    id: str | None
    event: str | None
    data: str


class FrameParser:
    def __init__(self) -> None:
        self._id: str | None = None
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> Frame | None:
        if line == "":
            if not self._data:
                self._event = None
                return None
            frame = Frame(self._id, self._event, "\n".join(self._data))
            self._event, self._data = None, []
            return frame
        if line.startswith(":"):
            return None  # a keepalive comment
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            self._id = value
        elif name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


def frames(lines: Iterator[str]) -> Iterator[Frame]:
    parser = FrameParser()
    for line in lines:
        frame = parser.feed(line)
        if frame is not None:
            yield frame


async def async_frames(lines: AsyncIterator[str]) -> AsyncIterator[Frame]:
    parser = FrameParser()
    async for line in lines:
        frame = parser.feed(line)
        if frame is not None:
            yield frame
