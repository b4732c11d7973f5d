"""Event buses: they wake the hubs of every process up; the database remains the truth."""

from __future__ import annotations

from pixlive.adapters.bus.base import (
    DEFAULT_CHANNEL,
    Bus,
    BusUnavailable,
    OnMessage,
    OnReconnect,
)

__all__ = [
    "DEFAULT_CHANNEL",
    "Bus",
    "BusUnavailable",
    "OnMessage",
    "OnReconnect",
    "bus_from_url",
]

_REDIS_SCHEMES = {"redis", "rediss"}
_POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+asyncpg"}


def bus_from_url(url: str, *, channel: str = DEFAULT_CHANNEL) -> Bus:
    """The bus for `PIXLIVE_BUS_URL`: `memory://`, `redis[s]://…` or `postgres[ql][+asyncpg]://…`.

    The networked buses are imported here, not at module level, so that the default
    single-process setup never loads a Redis or PostgreSQL client.
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if sep and scheme == "memory":
        from pixlive.adapters.bus.memory import MemoryBus

        return MemoryBus()
    if sep and scheme in _REDIS_SCHEMES:
        from pixlive.adapters.bus.redis import RedisBus

        return RedisBus(url, channel)
    if sep and scheme in _POSTGRES_SCHEMES:
        from pixlive.adapters.bus.postgres import PostgresBus

        return PostgresBus(url, channel)
    # Only the scheme is quoted back: the rest of the URL may hold a password.
    shown = f"scheme {scheme!r}" if sep else "(no scheme)"
    raise ValueError(
        f"unsupported bus URL {shown}: expected memory://, redis://, rediss://, "
        "postgresql://, postgres:// or postgresql+asyncpg://"
    )
