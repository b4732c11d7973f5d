"""The ASGI application: routes, error shapes, limits, security headers, lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from pixlive import __version__
from pixlive.api import (
    charges,
    docs,
    errors,
    links,
    ops,
    sandbox,
    streams,
    webhook,
    webhook_endpoints,
)
from pixlive.api.headers import SecurityHeaders
from pixlive.api.limits import BodyLimit
from pixlive.api.models import ErrorOut, MerchantChargeOut
from pixlive.api.pages import WEB, load_logo, logo_router
from pixlive.runtime import Runtime
from pixlive.settings import Settings

log = logging.getLogger("pixlive")


def _end_streams_on_signal(runtime: Runtime) -> Callable[[], None]:
    """On SIGTERM/SIGINT, end the live streams at once (WebSocket 1012, SSE and long poll
    finish cleanly) so that clients reconnect elsewhere while the server drains, instead
    of being cut off when the graceful-shutdown time runs out.

    The server's own handler (which stops accepting and drains) still runs after ours.
    """
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(runtime.hub.close_subscribers)
        chained = previous.get(signum)
        if callable(chained):
            chained(signum, frame)

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, handler)

    def restore() -> None:
        for signum, chained in previous.items():
            signal.signal(signum, chained)

    return restore


class App(FastAPI):
    """The PSP's webhook and a charge's WebSocket and SSE never reach the app: `pixlive
    serve`'s connection layer (pixlive.server) answers them."""

    max_body_bytes = 1 << 20


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Runtime]]:
        runtime = Runtime(
            settings,
            render_charge=lambda c: MerchantChargeOut.of(c, settings.base_url).model_dump(
                mode="json"
            ),
        )
        await runtime.start()
        app.state.runtime = runtime
        restore = _end_streams_on_signal(runtime)
        # What exists now (the framework, the app, the runtime: about 72,000 objects) lives
        # as long as the process, so it is moved out of the collector's sight (its garbage
        # collected first). Under webhook load a full collection took 60-100 ms, a pause
        # that every notification in flight waited out; now it scans only what came after.
        gc.collect()
        gc.freeze()
        try:
            # The lifespan state is how the server's connections (pixlive.server) reach
            # the runtime.
            yield {"runtime": runtime}
        finally:
            restore()
            await runtime.close()
            gc.unfreeze()  # the app may be started again in this process (tests)

    app = App(
        title="pixlive",
        version=__version__,
        description="Self-hosted Pix checkout with live payment confirmation.",
        lifespan=lifespan,
        redoc_url=None,
        docs_url=None,  # served by api/docs.py from our own origin, not a CDN
        # Every error has the one shape; routes list their specific ones on top of this.
        responses={"default": {"model": ErrorOut, "description": "An error (see its code)"}},
        # A trailing-slash redirect would answer odd ids with a 307 before the 404.
        redirect_slashes=False,
    )
    errors.install(app)
    docs.install(app)
    links.install(app)
    app.include_router(webhook.router)
    app.include_router(charges.router)
    app.include_router(streams.router)
    app.include_router(ops.router)
    app.include_router(webhook_endpoints.router)
    app.include_router(logo_router(load_logo(settings)))
    if settings.sandbox:
        app.include_router(sandbox.router)
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.max_body_bytes = settings.max_body_bytes
    return app
