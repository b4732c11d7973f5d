"""Live events of a charge over WebSocket, Server-Sent Events and long poll; and the
merchant's stream of all its charges' events.

Every stream subscribes to the hub first and reads the database second, so nothing that
commits in between can fall into a gap: it is either in the snapshot or backlog (and its
live copy is skipped by id) or it arrives live. A client that reconnects says where it
stopped and gets the events after that from the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from pixlive import metrics
from pixlive.api import event_list
from pixlive.api.dependencies import ApiKeyDep, ChargeIdDep, RuntimeDep
from pixlive.api.errors import error_response
from pixlive.api.models import ChargeOut, ErrorOut
from pixlive.api.params import EventId, LastEventIdHeader, resume_point
from pixlive.realtime.admission import Refused
from pixlive.realtime.hub import Closed, Subscriber
from pixlive.realtime.wire import Delivery, delivery
from pixlive.runtime import Runtime
from pixlive.services import events as stored
from pixlive.services.charges import get_charge

router = APIRouter(tags=["live"])

BACKLOG_LIMIT = 1000
POLL_MAX_SECONDS = 30
# WebSocket close codes: 1000 done (final event), 1012 server restarting, 1013 try again later.
CLOSE_CODES = {Closed.SHUTDOWN: 1012, Closed.SLOW: 1013}
SSE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx would otherwise hold the events back
}


class Slot:
    """A live connection's place: its hub subscription and its count against the limits.
    `close` gives both back, once, whichever way the connection ends."""

    __slots__ = ("client", "released", "runtime", "subscriber")

    def __init__(self, runtime: Runtime, client: str, subscriber: Subscriber) -> None:
        self.runtime = runtime
        self.client = client
        self.subscriber = subscriber
        self.released = False

    @classmethod
    def take(cls, runtime: Runtime, client: str, payment_id: str | None, transport: str) -> Slot:
        if (
            payment_id is not None
            and runtime.hub.count(payment_id) >= runtime.settings.max_subscribers_per_charge
        ):
            raise Refused("too_many_subscribers", "too many live connections to this charge")
        runtime.streams.acquire(client)
        return cls(runtime, client, runtime.hub.subscribe(payment_id, transport))

    def close(self) -> None:
        if not self.released:
            self.released = True
            self.runtime.hub.unsubscribe(self.subscriber)
            self.runtime.streams.release(self.client)


class Opened:
    """What a stream sends before going live: the snapshot, then the backlog."""

    __slots__ = ("backlog", "final", "last_event_id", "slot", "snapshot", "subscriber")

    def __init__(
        self,
        slot: Slot,
        snapshot: dict[str, Any],
        backlog: list[Delivery],
        final: bool,
    ) -> None:
        self.slot = slot
        self.subscriber = slot.subscriber
        self.snapshot = snapshot
        self.backlog = backlog
        self.final = final
        self.last_event_id = max([snapshot["last_event_id"], *(d.id for d in backlog)])


def client_address(scope_client: tuple[str, int] | None) -> str:
    return scope_client[0] if scope_client else "unknown"


async def open_stream(
    runtime: Runtime, payment_id: str, after: int | None, transport: str, client: str
) -> Opened:
    slot = Slot.take(runtime, client, payment_id, transport)
    try:
        async with runtime.db.read() as conn:
            charge = await get_charge(conn, payment_id, runtime.clock.now())
            events = []
            if after is not None and after < charge.last_event_id:
                events = await stored.events_after(conn, payment_id, after, BACKLOG_LIMIT)
    except BaseException:
        slot.close()
        raise
    snapshot = {
        "type": "snapshot",
        "last_event_id": charge.last_event_id,
        "payment": ChargeOut.of(charge, runtime.settings.base_url).model_dump(mode="json"),
    }
    backlog = [delivery(event) for event in events]
    opened = Opened(slot, snapshot, backlog, charge.status.is_final)
    slot.subscriber.mark_sent(opened.last_event_id)
    return opened


def _fresh(items: list[Delivery], after: int) -> list[Delivery]:
    return [item for item in items if item.id > after]


# Server-Sent Events ------------------------------------------------------------------------


async def _live_sse(
    subscriber: Subscriber, keepalive: float, transport: str, sent: int | None
) -> AsyncIterator[bytes]:
    """The live part of an SSE stream. A charge's stream (`sent` given) skips what it already
    sent and ends after a final event; the merchant's stream (`sent` None) goes on."""
    while True:
        try:
            async with asyncio.timeout(keepalive):
                await subscriber.wait()
        except TimeoutError:
            yield b": keepalive\n\n"
            continue
        items = subscriber.take()
        for item in items if sent is None else _fresh(items, sent):
            yield item.sse
            metrics.events_delivered.labels(transport).inc()
            if sent is not None:
                sent = item.id
                if item.final:
                    return
        if subscriber.closed is not None:
            return


def sse_opening(opened: Opened) -> tuple[bytes, bool]:
    """The snapshot and the backlog as SSE, in one chunk; whether the stream ends there."""
    snapshot = orjson.dumps(opened.snapshot).decode()
    # The snapshot's id is where the backlog starts, so that a connection lost in the
    # middle of the backlog resumes from the last event really received.
    resume_from = opened.backlog[0].id - 1 if opened.backlog else opened.last_event_id
    # retry: how long the browser waits before it reconnects by itself
    parts = [f"retry: 1000\nid: {resume_from}\nevent: snapshot\ndata: {snapshot}\n\n".encode()]
    parts.extend(item.sse for item in opened.backlog)
    metrics.events_delivered.labels("sse").inc(len(opened.backlog))
    final = opened.final or any(item.final for item in opened.backlog)
    return b"".join(parts), final


@router.get(
    "/payments/pix/{payment_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        429: {"model": ErrorOut},
    },
    summary="Server-Sent Events of one charge",
)
async def sse_stream(
    payment_id: ChargeIdDep,
    after: EventId | None = None,
    last_event_id: LastEventIdHeader = None,
) -> Response:
    # Described here (api/document.py); served by `pixlive serve`'s connection
    # (server/sse.py), which never hands this path to the app.
    return not_served_here()


def not_served_here() -> Response:
    return error_response(
        501, "not_served_here", "this path is served by `pixlive serve` itself, not the app"
    )


# Long poll ------------------------------------------------------------------------------------


@router.get(
    "/payments/pix/{payment_id}/poll",
    responses={404: {"model": ErrorOut}, 429: {"model": ErrorOut}},
    summary="Long poll: the events after `after`, waiting up to `timeout` seconds",
)
async def long_poll(
    payment_id: ChargeIdDep,
    request: Request,
    runtime: RuntimeDep,
    after: EventId | None = None,
    timeout: Annotated[float, Query(ge=0, le=POLL_MAX_SECONDS)] = 25,  # noqa: ASYNC109
) -> Response:
    opened = await open_stream(runtime, payment_id, after, "poll", client_address(request.client))
    subscriber = opened.subscriber
    try:
        events = opened.backlog
        snapshot = opened.snapshot
        if not events and not opened.final and timeout > 0:
            try:
                async with asyncio.timeout(timeout):
                    while not events and subscriber.closed is None:
                        await subscriber.wait()
                        events = _fresh(subscriber.take(), opened.last_event_id)
            except TimeoutError:
                pass
            if events:
                # The snapshot read before the wait is older than these events.
                async with runtime.db.read() as conn:
                    charge = await get_charge(conn, payment_id, runtime.clock.now())
                snapshot = {
                    "type": "snapshot",
                    "last_event_id": charge.last_event_id,
                    "payment": ChargeOut.of(charge, runtime.settings.base_url).model_dump(
                        mode="json"
                    ),
                }
        metrics.events_delivered.labels("poll").inc(len(events))
    finally:
        opened.slot.close()
    body = b'{"snapshot":%s,"events":[%s]}' % (
        orjson.dumps(snapshot),
        ",".join(item.text for item in events).encode(),
    )
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


# The merchant's stream ----------------------------------------------------------------------


async def _merchant_body(
    runtime: Runtime, slot: Slot, backlog: list[Delivery]
) -> AsyncIterator[bytes]:
    subscriber = slot.subscriber
    keepalive = runtime.settings.sse_keepalive_seconds
    try:
        yield b"retry: 1000\n\n"
        for item in backlog:
            yield item.sse
        async for frame in _live_sse(subscriber, keepalive, "merchant_sse", None):
            yield frame
    finally:
        slot.close()


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 401: {"model": ErrorOut}},
    summary="Server-Sent Events of every event of the merchant's charges",
)
async def merchant_stream(
    request: Request,
    runtime: RuntimeDep,
    api_key: ApiKeyDep,
    after: EventId | None = None,
    last_event_id: LastEventIdHeader = None,
) -> Response:
    if event_list.wants_json(request):
        return await event_list.event_list(request, runtime)
    start = resume_point(last_event_id, after)
    slot = Slot.take(runtime, client_address(request.client), None, "merchant_sse")
    subscriber = slot.subscriber
    try:
        async with runtime.db.read() as conn:
            if start is None:
                start = await stored.last_event_id(conn)
                events = []
            else:
                events = await stored.all_events_after(conn, start, BACKLOG_LIMIT * 10)
    except BaseException:
        slot.close()
        raise
    backlog = [delivery(event) for event in events]
    subscriber.mark_sent(start)
    for item in backlog:
        subscriber.mark_sent(item.id)
    # Live items already queued that the backlog also holds are dropped here, by id.
    seen = {item.id for item in backlog}
    subscriber.pending = type(subscriber.pending)(
        item for item in subscriber.pending if item.id not in seen and item.id > start
    )
    return StreamingResponse(
        _merchant_body(runtime, slot, backlog),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )
