"""The PSP's webhook, answered by the connection: its only way in.

Through ASGI every delivery cost a task, a request-response cycle, the scope and its
messages, the app's dispatch, and two socket writes: about a third of the server's time
per confirmation under load (docs/performance-log.md). Here the delivery is checked and
queued for the group commit in the parser's callback, and the commit's future writes the
whole answer in one `write`. What is decided (authentication, parsing, outcomes, errors)
is api/webhook.py's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pixlive.adapters.errors import DatabaseUnavailable
from pixlive.api import webhook
from pixlive.services.confirmation import IncomingPix, Outcome

if TYPE_CHECKING:
    from pixlive.server.request import Request

# The connection (server/http.py), which imports this module: typed loosely here.
HttpProtocol = Any

log = logging.getLogger("pixlive.webhook")

_INTERNAL = webhook.error(500, "internal_error", "an unexpected error occurred")


def deliver(conn: HttpProtocol, request: Request) -> None:
    runtime = conn.runtime
    assert runtime is not None
    try:
        found = webhook.credentials(request.headers, request.query)
        if len(found) == 3:
            conn.respond(request, found[0], found[1], found[2])
            return
        signature, token = found
        body = bytes(request.body)
        request.body = bytearray()
        checked = webhook.check_delivery(
            runtime, body, signature, token, certificate=conn.certificate
        )
        if isinstance(checked, tuple):
            conn.respond(request, *checked)
            return
        future = webhook.submit_delivery(runtime, checked)
    except DatabaseUnavailable as exc:
        conn.respond(request, *_failure(exc))
        return
    except Exception:  # a bug: the PSP gets the error shape and retries
        log.exception("webhook failed")
        conn.respond(request, *_INTERNAL)
        return
    future.add_done_callback(lambda done: _committed(conn, request, checked, done))


def _committed(
    conn: HttpProtocol,
    request: Request,
    incoming: list[IncomingPix],
    done: asyncio.Future[list[Outcome]],
) -> None:
    exc = done.exception()
    if exc is None:
        try:
            result = webhook.answer_outcomes(incoming, done.result())
        except Exception:
            log.exception("webhook failed")
            result = _INTERNAL
    else:
        result = _failure(exc)
    conn.respond(request, *result)


def _failure(exc: BaseException) -> webhook.Answer:
    result = webhook.answer_failure(exc)
    if result is None:
        log.error("webhook failed", exc_info=exc)
        result = _INTERNAL
    return result
