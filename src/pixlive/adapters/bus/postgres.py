"""PostgreSQL LISTEN/NOTIFY bus: one listening connection, one publishing connection.

Lets a deployment scale past one process with PostgreSQL alone. NOTIFY is delivered
only on commit and in commit order; each `publish` is its own autocommit statement, so
PostgreSQL never folds two identical payloads together (it does within a transaction).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from pixlive.adapters.bus.base import DEFAULT_CHANNEL, BusUnavailable, SupervisedBus, close_quietly

__all__ = ["MAX_PAYLOAD", "PostgresBus"]

MAX_PAYLOAD = 7999
"""PostgreSQL's default limit: a NOTIFY payload must be shorter than 8000 bytes."""

_MAX_IDENTIFIER = 63  # NAMEDATALEN - 1: pg_notify rejects longer channel names

_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def asyncpg_dsn(url: str) -> str:
    """Accept SQLAlchemy's `postgresql+asyncpg://` spelling, which asyncpg itself does not."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower().startswith("postgresql+"):
        return "postgresql://" + rest
    return url


# One statement for a batch's messages; notifications go out in the order they are made.
_NOTIFY_ALL = (
    "SELECT pg_notify($1, payload) FROM unnest($2::text[]) WITH ORDINALITY AS m(payload, n) "
    "ORDER BY n"
)


class PostgresBus(SupervisedBus):
    """`Bus` on LISTEN/NOTIFY (`postgresql://`, `postgres://`, `postgresql+asyncpg://`).

    `subscriber_name` and `publisher_name` are the `application_name` of its two
    connections, unique per instance, so that they can be found in `pg_stat_activity`.
    """

    def __init__(
        self,
        url: str,
        channel: str = DEFAULT_CHANNEL,
        *,
        timeout: float = 2.0,
        health_interval: float = 1.0,
    ) -> None:
        super().__init__()
        if not channel:
            raise ValueError("the bus channel name must not be empty")
        if len(channel.encode()) > _MAX_IDENTIFIER:
            raise ValueError(f"a PostgreSQL channel name is at most {_MAX_IDENTIFIER} bytes")
        self.channel = channel
        suffix = secrets.token_hex(4)
        self.subscriber_name = f"pixlive-bus-listen-{suffix}"
        self.publisher_name = f"pixlive-bus-publish-{suffix}"
        self._dsn = asyncpg_dsn(url)
        self._timeout = timeout
        self._health_interval = health_interval
        self._listener: asyncpg.Connection[Any] | None = None
        self._lost: asyncio.Event | None = None
        self._publisher: asyncpg.Connection[Any] | None = None
        # One connection serialises the publishes anyway; the lock makes them queue in
        # call order instead of failing with "another operation is in progress".
        self._publish_lock = asyncio.Lock()

    async def publish(self, message: bytes) -> None:
        await self.publish_many([message])

    async def publish_many(self, messages: Sequence[bytes]) -> None:
        for message in messages:
            if len(message) > MAX_PAYLOAD:
                raise ValueError(
                    f"NOTIFY payload is {len(message)} bytes; "
                    f"PostgreSQL takes at most {MAX_PAYLOAD}"
                )
        if self._closed:
            raise BusUnavailable("bus is closed")
        payloads = [message.decode() for message in messages]  # pg_notify takes UTF-8 text
        async with self._publish_lock:
            # A kept connection may have died while idle: retry once on a fresh one
            # before telling the caller the broker is gone.
            for attempt in range(2):
                reused = self._publisher is not None
                try:
                    conn = await self._publishing_connection()
                    await conn.execute(_NOTIFY_ALL, self.channel, payloads, timeout=self._timeout)
                    return
                except _ERRORS as exc:
                    self._drop_publisher_if_broken(exc)
                    if not reused or attempt == 1:
                        raise BusUnavailable(f"postgres publish failed: {exc!r}") from exc

    async def ping(self) -> bool:
        if self._closed:
            return False
        async with self._publish_lock:
            try:
                conn = await self._publishing_connection()
                await conn.fetchval("SELECT 1", timeout=self._timeout)
            except _ERRORS as exc:
                self._drop_publisher_if_broken(exc)
                return False
        return True

    async def _publishing_connection(self) -> asyncpg.Connection[Any]:
        if self._publisher is None or self._publisher.is_closed():
            self._publisher = await self._open(self.publisher_name)
        return self._publisher

    def _drop_publisher_if_broken(self, exc: BaseException) -> None:
        conn = self._publisher
        if conn is None:
            return
        # A server-side error (say, a full notification queue) leaves the connection
        # usable; anything else may leave it mid-protocol, so start afresh.
        if isinstance(exc, asyncpg.PostgresError) and not conn.is_closed():
            return
        self._publisher = None
        conn.terminate()

    async def _open(self, application_name: str) -> asyncpg.Connection[Any]:
        return await asyncpg.connect(
            self._dsn,
            timeout=self._timeout,
            server_settings={"application_name": application_name},
        )

    def _on_notify(
        self,
        conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any],
        pid: int,
        channel: str,
        payload: object,
    ) -> None:
        # asyncpg hands NOTIFY payloads over as decoded text.
        assert isinstance(payload, str)
        self._deliver(payload.encode())

    async def _connect(self) -> None:
        lost = asyncio.Event()
        self._lost = lost
        conn = await self._open(self.subscriber_name)
        self._listener = conn
        # asyncpg calls this when the server ends the session (pg_terminate_backend,
        # restart): far sooner than the periodic health check would notice.
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(self.channel, self._on_notify)

    async def _serve(self) -> None:
        conn, lost = self._listener, self._lost
        assert conn is not None and lost is not None
        while True:
            try:
                await asyncio.wait_for(lost.wait(), self._health_interval)
            except TimeoutError:
                pass
            else:
                raise ConnectionError("listening connection terminated")
            # A half-open TCP connection gives no termination event; only a query that
            # gets no answer reveals it.
            await conn.fetchval("SELECT 1", timeout=self._timeout)

    async def _disconnect(self) -> None:
        conn, self._listener = self._listener, None
        if conn is None:
            return
        if conn.is_closed():
            return
        await close_quietly(conn.close(timeout=self._timeout), self._timeout)
        if not conn.is_closed():
            conn.terminate()

    async def _close_publisher(self) -> None:
        async with self._publish_lock:
            conn, self._publisher = self._publisher, None
        if conn is not None:
            await close_quietly(conn.close(timeout=self._timeout), self._timeout)
            if not conn.is_closed():
                conn.terminate()
