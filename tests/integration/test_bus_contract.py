"""The bus contract, run against every bus, and the fault cases against the real servers.

Redis and PostgreSQL are shared with other test runs: every test uses its own channel,
and a fault test only ever kills connections it can name as its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlparse

import asyncpg
import pytest
import redis.asyncio as aioredis

from pixlive.adapters.bus import Bus, BusUnavailable, bus_from_url
from pixlive.adapters.bus.memory import MemoryBus
from pixlive.adapters.bus.postgres import MAX_PAYLOAD, PostgresBus
from pixlive.adapters.bus.redis import RedisBus

WAIT = 4.0  # seconds; every wait is bounded so that a broken bus fails fast, not hangs


class Recorder:
    """The subscriber side: what arrived, and how often on_reconnect ran."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.reconnected = 0
        self.during_reconnect: Callable[[], Awaitable[None]] | None = None

    def on_message(self, message: bytes) -> None:
        self.messages.append(message)

    async def on_reconnect(self) -> None:
        if self.during_reconnect is not None:
            await self.during_reconnect()
        self.reconnected += 1


async def eventually(check: Callable[[], bool], timeout: float = WAIT) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def channel_name() -> str:
    return "pixlive.test." + secrets.token_hex(6)


BusFactory = Callable[..., Bus]


@pytest.fixture(params=["memory", "redis", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_bus(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """Builds buses of `kind` that share one fresh channel, and closes them all after."""
    channel = channel_name()
    url = {
        "memory": lambda: "memory://",
        "redis": lambda: request.getfixturevalue("redis_url"),
        "postgres": lambda: request.getfixturevalue("pg_server_url"),
    }[kind]()
    made: list[Bus] = []

    def make(**options: float) -> Bus:
        if kind == "redis":
            bus: Bus = RedisBus(url, channel, **options)
        elif kind == "postgres":
            bus = PostgresBus(url, channel, **options)
        else:
            bus = bus_from_url(url, channel=channel)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await asyncio.wait_for(bus.close(), WAIT)


async def started(bus: Bus) -> Recorder:
    recorder = Recorder()
    await asyncio.wait_for(bus.start(recorder.on_message, recorder.on_reconnect), WAIT)
    return recorder


# --- the contract, for every bus ------------------------------------------------------


async def test_messages_arrive_in_order(make_bus: BusFactory) -> None:
    bus = make_bus()
    recorder = await started(bus)
    sent = [f'{{"id": {i}}}'.encode() for i in range(5)]
    for message in sent:
        await bus.publish(message)
    await eventually(lambda: len(recorder.messages) >= len(sent))
    assert recorder.messages == sent
    assert recorder.reconnected == 0
    assert bus.reconnects == 0


async def test_two_processes_on_one_channel_both_receive(kind: str, make_bus: BusFactory) -> None:
    if kind == "memory":
        pytest.skip("the memory bus serves one process only")
    first, second = make_bus(), make_bus()
    first_seen, second_seen = await started(first), await started(second)
    await first.publish(b'{"from": "first"}')
    await second.publish(b'{"from": "second"}')
    expected = [b'{"from": "first"}', b'{"from": "second"}']
    await eventually(lambda: len(first_seen.messages) >= 2 and len(second_seen.messages) >= 2)
    assert first_seen.messages == expected
    assert second_seen.messages == expected


async def test_burst_of_a_thousand_arrives_complete_and_in_order(make_bus: BusFactory) -> None:
    bus = make_bus()
    recorder = await started(bus)
    sent = [f'{{"id": {i}, "payment_id": "p{i % 7}"}}'.encode() for i in range(1000)]
    for message in sent:
        await bus.publish(message)
    await eventually(lambda: len(recorder.messages) >= len(sent))
    assert recorder.messages == sent


async def test_publish_many_arrives_complete_and_in_order(kind: str, make_bus: BusFactory) -> None:
    bus = make_bus()
    recorder = await started(bus)
    first = [f'{{"id": {i}}}'.encode() for i in range(300)]
    second = [f'{{"id": {i}}}'.encode() for i in range(300, 310)]
    await bus.publish_many(first)
    await bus.publish(b"single")
    await bus.publish_many(second)
    await bus.publish_many([])
    expected = [*first, b"single", *second]
    await eventually(lambda: len(recorder.messages) >= len(expected))
    assert recorder.messages == expected
    # Only a broker reaches other processes; the hub skips publishing when none does.
    assert bus.reaches_others is (kind != "memory")


async def test_any_bytes_arrive_as_sent(kind: str, make_bus: BusFactory) -> None:
    """Messages that look like the Redis bus's packing (a leading NUL byte, a length and a
    colon), empty ones and long ones arrive unchanged, alone or in a batch."""
    bus = make_bus()
    recorder = await started(bus)
    odd = [b"\x00", b"\x003:abc", b"", b"12:twelve", b"\x00" * 3]
    if kind == "postgres":  # NOTIFY carries text only, at most MAX_PAYLOAD bytes
        odd = [b"3:abc", b"", b"12:twelve", b"plain"]
    for message in odd:
        await bus.publish(message)
    await bus.publish_many(odd)
    expected = [*odd, *odd]
    if kind == "redis":  # more than one packed payload's worth, in one call
        big = [bytes([65 + i]) * 100_000 for i in range(6)]
        await bus.publish_many(big)
        expected += big
    await eventually(lambda: len(recorder.messages) >= len(expected))
    assert recorder.messages == expected


async def test_ping_is_true_when_the_broker_is_up(make_bus: BusFactory) -> None:
    bus = make_bus()
    await started(bus)
    assert await asyncio.wait_for(bus.ping(), WAIT) is True


async def test_close_is_clean_and_idempotent(make_bus: BusFactory) -> None:
    before = asyncio.all_tasks()
    bus = make_bus()
    await started(bus)
    await bus.publish(b"{}")
    await asyncio.wait_for(bus.close(), WAIT)
    await asyncio.wait_for(bus.close(), WAIT)
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set(), "close left tasks running"
    assert await bus.ping() is False
    with pytest.raises(BusUnavailable):
        await bus.publish(b"{}")


async def test_postgres_refuses_a_payload_notify_cannot_carry(
    kind: str, make_bus: BusFactory
) -> None:
    if kind != "postgres":
        pytest.skip("only NOTIFY limits the payload size")
    bus = make_bus()
    recorder = await started(bus)
    with pytest.raises(ValueError, match=r"8000|7999"):
        await bus.publish(b"x" * (MAX_PAYLOAD + 1))
    largest = b'"' + b"x" * (MAX_PAYLOAD - 2) + b'"'
    await bus.publish(largest)
    await eventually(lambda: recorder.messages == [largest])


# --- choosing a bus -------------------------------------------------------------------


def test_bus_from_url_chooses_by_scheme() -> None:
    assert isinstance(bus_from_url("memory://"), MemoryBus)
    assert isinstance(bus_from_url("redis://127.0.0.1:6379/0"), RedisBus)
    assert isinstance(bus_from_url("rediss://example.invalid:6380/0"), RedisBus)
    for url in (
        "postgresql://u@h/db",
        "postgres://u@h/db",
        "postgresql+asyncpg://u@h/db",
    ):
        bus = bus_from_url(url, channel="custom")
        assert isinstance(bus, PostgresBus)
        assert bus.channel == "custom"


def test_bus_from_url_rejects_other_schemes_without_echoing_secrets() -> None:
    for url in ("kafka://user:hunter2@broker/x", "sqlite:///x.db", "nonsense"):
        with pytest.raises(ValueError, match="unsupported bus URL") as raised:
            bus_from_url(url)
        assert "hunter2" not in str(raised.value)


def test_postgres_rejects_a_channel_name_longer_than_an_identifier() -> None:
    with pytest.raises(ValueError, match="63"):
        PostgresBus("postgresql://u@h/db", "c" * 64)


# --- faults on the real servers -------------------------------------------------------


async def kill_redis_client(redis_url: str, name: str) -> None:
    admin = aioredis.Redis.from_url(redis_url)
    try:
        clients = await admin.client_list()
        ids = [c["id"] for c in clients if c.get("name") == name]
        assert ids, f"no redis client named {name}"
        for client_id in ids:
            await admin.execute_command("CLIENT", "KILL", "ID", client_id)
    finally:
        await admin.aclose()


async def kill_postgres_backend(pg_url: str, application_name: str) -> None:
    admin = await asyncpg.connect(pg_url)
    try:
        # Select first, terminate after: within one WHERE clause PostgreSQL may call
        # pg_terminate_backend on rows before the name test has filtered them out.
        pids = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name
        )
        assert pids, f"no backend named {application_name}"
        for row in pids:
            await admin.execute("SELECT pg_terminate_backend($1)", row["pid"])
    finally:
        await admin.close()


@pytest.fixture(params=["redis", "postgres"])
async def real_bus(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Bus, str, str]]:
    """A started-later networked bus, with the URL and kind needed to hurt it."""
    kind = str(request.param)
    url = request.getfixturevalue("redis_url" if kind == "redis" else "pg_server_url")
    bus: Bus = (
        RedisBus(url, channel_name()) if kind == "redis" else PostgresBus(url, channel_name())
    )
    yield bus, url, kind
    await asyncio.wait_for(bus.close(), WAIT)


async def kill_subscriber(kind: str, url: str, bus: Bus) -> None:
    assert isinstance(bus, RedisBus | PostgresBus)
    if kind == "redis":
        await kill_redis_client(url, bus.subscriber_name)
    else:
        await kill_postgres_backend(url, bus.subscriber_name)


async def test_subscriber_killed_by_the_server_reconnects_and_catches_up(
    real_bus: tuple[Bus, str, str],
) -> None:
    bus, url, kind = real_bus
    recorder = await started(bus)
    await bus.publish(b'{"n": 1}')
    await eventually(lambda: recorder.messages == [b'{"n": 1}'])

    await kill_subscriber(kind, url, bus)
    await eventually(lambda: recorder.reconnected == 1)
    assert bus.reconnects == 1

    await bus.publish(b'{"n": 2}')
    await eventually(lambda: len(recorder.messages) >= 2)
    assert recorder.messages == [b'{"n": 1}', b'{"n": 2}']


async def test_messages_arriving_during_on_reconnect_wait_for_it(
    real_bus: tuple[Bus, str, str],
) -> None:
    bus, url, kind = real_bus
    recorder = await started(bus)
    seen_during: list[list[bytes]] = []

    async def catch_up() -> None:
        # Published after the re-subscription, so the broker does deliver it; the bus
        # must hold it until the catch-up is over.
        await bus.publish(b'{"during": true}')
        await asyncio.sleep(0.3)
        seen_during.append(list(recorder.messages))

    recorder.during_reconnect = catch_up
    await kill_subscriber(kind, url, bus)
    await eventually(lambda: recorder.messages == [b'{"during": true}'])
    assert seen_during == [[]]
    assert recorder.reconnected == 1


async def test_publisher_connection_killed_is_replaced_on_next_publish(
    real_bus: tuple[Bus, str, str],
) -> None:
    bus, url, kind = real_bus
    assert isinstance(bus, RedisBus | PostgresBus)
    recorder = await started(bus)
    await bus.publish(b'{"n": 1}')
    await eventually(lambda: len(recorder.messages) == 1)
    if kind == "redis":
        await kill_redis_client(url, bus.publisher_name)
    else:
        await kill_postgres_backend(url, bus.publisher_name)
    await asyncio.sleep(0.05)
    await bus.publish(b'{"n": 2}')
    await eventually(lambda: len(recorder.messages) == 2)
    assert bus.reconnects == 0, "the subscriber was not touched"


@pytest.mark.parametrize("scheme", ["redis", "postgresql"])
async def test_broker_down_at_startup_does_not_stop_the_process(
    scheme: str, free_port: int
) -> None:
    url = f"{scheme}://127.0.0.1:{free_port}" + ("/0" if scheme == "redis" else "/test")
    bus = bus_from_url(url, channel=channel_name())
    recorder = Recorder()
    try:
        await asyncio.wait_for(bus.start(recorder.on_message, recorder.on_reconnect), WAIT)
        with pytest.raises(BusUnavailable):
            await asyncio.wait_for(bus.publish(b"{}"), WAIT)
        assert await asyncio.wait_for(bus.ping(), WAIT) is False
        assert bus.reconnects == 0
    finally:
        await asyncio.wait_for(bus.close(), WAIT)


# --- faults through a proxy the test controls -----------------------------------------


class Proxy:
    """A TCP forwarder that can go silent without closing anything: a half-open network."""

    def __init__(self, target: str, port: int) -> None:
        parsed = urlparse(target)
        self.target_host = parsed.hostname or "127.0.0.1"
        self.target_port = parsed.port or 0
        self.port = port
        self.frozen = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_w.close()
            return
        self._writers += [client_w, server_w]
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.create_task(self._pump(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                while self.frozen.is_set():
                    await asyncio.sleep(0.01)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()


def through(url: str, port: int) -> str:
    parsed = urlparse(url)
    netloc = parsed.netloc.rsplit("@", 1)
    hostport = f"127.0.0.1:{port}"
    return parsed._replace(
        netloc=f"{netloc[0]}@{hostport}" if len(netloc) == 2 else hostport
    ).geturl()


@pytest.fixture(params=["redis", "postgres"])
def server_url(request: pytest.FixtureRequest) -> str:
    return str(
        request.getfixturevalue("redis_url" if request.param == "redis" else "pg_server_url")
    )


async def test_broker_that_comes_up_later_is_caught_up_with(
    server_url: str, free_port: int
) -> None:
    proxy = Proxy(server_url, free_port)
    bus = bus_from_url(through(server_url, free_port), channel=channel_name())
    recorder = Recorder()
    try:
        await asyncio.wait_for(bus.start(recorder.on_message, recorder.on_reconnect), WAIT)
        assert recorder.reconnected == 0
        await proxy.start()
        # Messages may have been published while nobody listened: the hub must catch up.
        await eventually(lambda: recorder.reconnected == 1)
        assert bus.reconnects == 1
        await bus.publish(b'{"late": true}')
        await eventually(lambda: recorder.messages == [b'{"late": true}'])
    finally:
        await asyncio.wait_for(bus.close(), WAIT)
        await proxy.close()


async def test_silent_connection_is_detected_by_the_health_check(
    server_url: str, free_port: int
) -> None:
    proxy = Proxy(server_url, free_port)
    await proxy.start()
    url = through(server_url, free_port)
    options = {"timeout": 0.5, "health_interval": 0.2}
    bus: Bus = (
        RedisBus(url, channel_name(), **options)
        if url.startswith("redis")
        else (PostgresBus(url, channel_name(), **options))
    )
    recorder = Recorder()
    try:
        await asyncio.wait_for(bus.start(recorder.on_message, recorder.on_reconnect), WAIT)
        proxy.frozen.set()
        assert await bus.ping() is False
        await asyncio.sleep(1.0)  # several health intervals: the loss must be noticed
        proxy.frozen.clear()
        await eventually(lambda: recorder.reconnected == 1)
        assert bus.reconnects == 1
        await bus.publish(b'{"after": "thaw"}')
        await eventually(lambda: recorder.messages == [b'{"after": "thaw"}'])
    finally:
        await asyncio.wait_for(bus.close(), WAIT)
        await proxy.close()
