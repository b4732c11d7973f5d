"""Redis pub/sub bus: a pooled publisher client, and one dedicated subscriber connection.

The subscriber speaks to a bare redis-py `Connection` rather than `PubSub`, because
`PubSub` reconnects and re-subscribes silently inside its own retry logic: the gap
would go unnoticed and `on_reconnect` would never run. Here every loss surfaces,
and the reconnect loop in `SupervisedBus` handles it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from pixlive.adapters.bus.base import DEFAULT_CHANNEL, BusUnavailable, SupervisedBus, close_quietly

__all__ = ["RedisBus", "pack", "unpack"]

# A payload that carries several messages starts with this byte, then each message as
# `<length>:<bytes>`. One PUBLISH per round trip instead of one per event: every process
# (the publisher's own subscription included) reads and parses one reply, not dozens,
# which under load cost as much as the webhook's HTTP handling (docs/performance-log.md).
_PACKED = b"\x00"
_PACK_LIMIT = 256 * 1024  # bytes per payload: a long backlog goes in several


def pack(messages: Sequence[bytes]) -> list[bytes]:
    """The payloads that carry `messages`, in order; a lone message goes as it is (unless
    it could be mistaken for a packed payload)."""
    if len(messages) == 1 and not messages[0].startswith(_PACKED):
        return [messages[0]]
    payloads: list[bytes] = []
    parts: list[bytes] = [_PACKED]
    size = 1
    for message in messages:
        if size > 1 and size + len(message) > _PACK_LIMIT:
            payloads.append(b"".join(parts))
            parts, size = [_PACKED], 1
        part = b"%d:%s" % (len(message), message)
        parts.append(part)
        size += len(part)
    if size > 1:
        payloads.append(b"".join(parts))
    return payloads


def unpack(payload: bytes) -> list[bytes]:
    """The messages of a payload; ValueError when a packed one is cut or malformed."""
    if not payload.startswith(_PACKED):
        return [payload]
    messages = []
    at, end = 1, len(payload)
    while at < end:
        colon = payload.find(b":", at, at + 12)
        if colon < 0 or not payload[at:colon].isdigit():
            raise ValueError("malformed packed bus payload")
        start = colon + 1
        stop = start + int(payload[at:colon])
        if stop > end:
            raise ValueError("cut packed bus payload")
        messages.append(payload[start:stop])
        at = stop
    return messages


log = logging.getLogger(__name__)

_SUBSCRIBER_FIXED = frozenset({"protocol", "decode_responses", "health_check_interval"})


def _without_query_args(url: str, names: frozenset[str]) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    return urlunsplit(parts._replace(query=urlencode(query)))


class RedisBus(SupervisedBus):
    """`Bus` on Redis pub/sub (`redis://` or `rediss://` URLs).

    `subscriber_name` and `publisher_name` are the CLIENT SETNAME of its connections,
    unique per instance, so that an operator (or a test) can find those very ones.
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
        self.channel = channel
        suffix = secrets.token_hex(4)
        self.subscriber_name = f"pixlive-bus-sub-{suffix}"
        self.publisher_name = f"pixlive-bus-pub-{suffix}"
        self._timeout = timeout
        self._health_interval = health_interval
        common: dict[str, Any] = {
            "socket_connect_timeout": timeout,
            "socket_timeout": timeout,
            "socket_keepalive": True,
        }
        # One immediate retry covers a pooled connection that went stale while idle;
        # more would hold the caller up for nothing: a lost message is tolerated.
        # It must be redis.asyncio's Retry: the sync one, accepted without complaint,
        # returns the coroutine unawaited and so never retries anything.
        self._publisher: Redis = Redis.from_url(
            url, client_name=self.publisher_name, retry=Retry(NoBackoff(), 1), **common
        )
        # The reader below parses RESP2 pub/sub frames itself (under RESP3, redis-py 6+
        # routes them to a push handler instead), wants raw bytes, and must not let
        # redis-py's own health check read (and swallow) a message off the wire. Query
        # arguments in the URL would override these keywords, hence their removal.
        self._subscriber_pool: ConnectionPool = ConnectionPool.from_url(
            _without_query_args(url, _SUBSCRIBER_FIXED),
            client_name=self.subscriber_name,
            protocol=2,
            decode_responses=False,
            health_check_interval=0,
            **common,
        )
        self._subscriber: AbstractConnection | None = None

    async def publish(self, message: bytes) -> None:
        if self._closed:
            raise BusUnavailable("bus is closed")
        try:
            for payload in pack([message]):
                await self._publisher.publish(self.channel, payload)
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis publish failed: {exc}") from exc

    async def publish_many(self, messages: Sequence[bytes]) -> None:
        if self._closed:
            raise BusUnavailable("bus is closed")
        if not messages:
            return
        try:
            payloads = pack(messages)
            if len(payloads) == 1:
                await self._publisher.publish(self.channel, payloads[0])
                return
            async with self._publisher.pipeline(transaction=False) as pipe:
                for payload in payloads:
                    pipe.publish(self.channel, payload)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis publish failed: {exc}") from exc

    async def ping(self) -> bool:
        if self._closed:
            return False
        try:
            return bool(await asyncio.wait_for(self._publisher.ping(), self._timeout))
        except (RedisError, OSError, TimeoutError):
            return False

    async def _connect(self) -> None:
        conn: AbstractConnection = self._subscriber_pool.make_connection()  # type: ignore[no-untyped-call]
        self._subscriber = conn
        await conn.connect()  # type: ignore[no-untyped-call]
        await conn.send_command("SUBSCRIBE", self.channel)
        async with asyncio.timeout(self._timeout):
            while True:
                reply = await conn.read_response(timeout=self._timeout, disconnect_on_error=False)
                if reply is None:
                    raise TimeoutError("no reply to SUBSCRIBE")
                if isinstance(reply, list) and reply and reply[0] == b"subscribe":
                    return

    async def _serve(self) -> None:
        conn = self._subscriber
        assert conn is not None
        loop = asyncio.get_running_loop()
        interval = self._health_interval
        ping_sent_at: float | None = None
        while True:
            reply = await conn.read_response(timeout=interval, disconnect_on_error=False)
            if reply is None:
                # Silence is normal on a quiet channel but is also what a half-open TCP
                # connection looks like; a PING tells them apart within two intervals.
                now = loop.time()
                if ping_sent_at is None:
                    await conn.send_command("PING")
                    ping_sent_at = now
                elif now - ping_sent_at >= interval:
                    raise TimeoutError("redis did not answer PING")
                continue
            ping_sent_at = None
            # RESP2 pub/sub frames: [b"message", channel, data]; PONG is [b"pong", b""].
            if reply[0] == b"message":
                try:
                    messages = unpack(reply[2])
                except ValueError:
                    log.warning("ignored a malformed bus payload")
                    continue
                for message in messages:
                    self._deliver(message)

    async def _disconnect(self) -> None:
        conn, self._subscriber = self._subscriber, None
        if conn is not None:
            await close_quietly(conn.disconnect(), self._timeout)

    async def _close_publisher(self) -> None:
        await close_quietly(self._publisher.aclose(), self._timeout)
        await close_quietly(self._subscriber_pool.disconnect(), self._timeout)
