"""The PSP's confirmation webhook, in the Banco Central's API Pix format.

The raw body is read first, because the signature covers its exact bytes; only an
authenticated body is parsed. Each delivery runs as one use case in the group-commit
writer, so the 200 goes out after its Pix are on disk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from pixlive import metrics
from pixlive.adapters.errors import DatabaseUnavailable, InvalidData
from pixlive.api import headers
from pixlive.api.dependencies import RuntimeDep
from pixlive.api.limits import BodyTooLarge
from pixlive.api.models import ErrorOut, PixIn, WebhookIn, WebhookOut
from pixlive.domain.money import parse_amount
from pixlive.runtime import Runtime
from pixlive.services.confirmation import IncomingPix, Outcome, confirm
from pixlive.services.signature import HEADER, SignatureError, verify, verify_token

router = APIRouter(tags=["PSP webhook"])
log = logging.getLogger("pixlive.webhook")


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """The model's JSON schema with its `#/$defs/...` references replaced by what they name:
    inside an OpenAPI document such a reference points at nothing (its root has no $defs)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline_defs(WebhookIn.model_json_schema())}},
    },
    "parameters": [
        {
            "name": HEADER,
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of f'{t}.' + raw body>",
        }
    ],
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": WebhookOut},
    400: {"model": ErrorOut},
    401: {"model": ErrorOut},
    413: {"model": ErrorOut},
    422: {"model": ErrorOut},
    503: {"model": ErrorOut},
}


# What the ledger and the events can store: a moment of the Unix era, in a 4-digit year
# once in UTC. "0001-01-01T00:00:00+14:00" parses, but no datetime holds it in UTC.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _horario(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("horario needs a time zone")
    try:
        in_utc = moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("horario is out of range") from exc
    if not _EARLIEST <= in_utc < _LATEST:
        raise ValueError("horario is out of range")
    return moment


def _incoming(item: PixIn, raw: dict[str, Any]) -> IncomingPix:
    return IncomingPix(
        end_to_end_id=item.endToEndId,
        txid=item.txid,
        value=parse_amount(item.valor, strict=True),
        horario=_horario(item.horario),
        raw=raw,
    )


Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]  # status, JSON body, extra headers


def error(status: int, code: str, message: str) -> Answer:
    return status, orjson.dumps({"error": {"code": code, "message": message}}), []


def check_delivery(
    runtime: Runtime, body: bytes, signature: str | None, token: str | None
) -> Answer | list[IncomingPix]:
    """The delivery's Pix, once it is authenticated and well formed; else the refusal.
    Synchronous, like `answer_outcomes` and `answer_failure`: the webhook's own HTTP
    protocol (api/http.py) runs them with no coroutine of its own."""
    settings = runtime.settings
    try:
        if settings.webhook_auth == "mtls":
            # The TLS layer authenticated the PSP: `pixlive serve --client-ca` (which this
            # mode requires, see cli.py) completes no handshake without a certificate of
            # that CA, so a request that reaches this point carries a verified one.
            pass
        elif settings.webhook_auth == "token":
            verify_token(settings.secret, token)
        else:
            verify(
                settings.secret, signature, body, time.time(), settings.webhook_tolerance_seconds
            )
    except SignatureError as exc:
        metrics.webhook_rejected.labels("auth").inc()
        return error(401, "invalid_signature", str(exc))

    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        metrics.webhook_rejected.labels("malformed").inc()
        return error(400, "invalid_json", "the body is not valid JSON")
    if isinstance(document, list):
        # Some PSPs send the Pix as the root array, not under "pix" (docs/psp.md, profiles).
        document = {"pix": document}
    try:
        parsed = WebhookIn.model_validate(document)
        raw_items = document["pix"] if isinstance(document["pix"], list) else [document["pix"]]
        items = parsed.pix if isinstance(parsed.pix, list) else [parsed.pix]
        return [_incoming(item, raw) for item, raw in zip(items, raw_items, strict=True)]
    except (ValidationError, ValueError, TypeError) as exc:
        metrics.webhook_rejected.labels("malformed").inc()
        return error(422, "invalid_pix", _explain(exc))


def submit_delivery(runtime: Runtime, incoming: list[IncomingPix]) -> asyncio.Future[list[Outcome]]:
    """Queues the delivery's use case for the next group commit."""
    return runtime.writer.submit(confirm, incoming)


def answer_failure(exc: BaseException) -> Answer | None:
    """The answer for what the writer may raise; None for anything else (a bug)."""
    if isinstance(exc, InvalidData):
        return error(422, "invalid_pix", "a value cannot be stored as given")
    if isinstance(exc, DatabaseUnavailable):
        log.warning("webhook: database unavailable: %s", exc)
        status, payload, _ = error(
            503, "database_unavailable", "the database is unreachable; retry later"
        )
        return status, payload, [(b"retry-after", b"5")]
    return None


def answer_outcomes(incoming: list[IncomingPix], outcomes: list[Outcome]) -> Answer:
    results = []
    for item, outcome in zip(incoming, outcomes, strict=True):
        _COUNTED[outcome].inc()
        results.append(
            {
                "endToEndId": item.end_to_end_id,
                "outcome": outcome.value,
                "payment_id": item.txid if outcome in (Outcome.PAID, Outcome.MISMATCH) else None,
            }
        )
    return 200, orjson.dumps({"results": results}), []


_COUNTED = {outcome: metrics.webhook_pix.labels(outcome.value) for outcome in Outcome}


async def confirm_delivery(
    runtime: Runtime, body: bytes, signature: str | None, token: str | None
) -> Answer:
    """The whole webhook, from the raw body to the answer (status, JSON, extra headers);
    shared by the route (for the OpenAPI description) and the ASGI fast path below."""
    checked = check_delivery(runtime, body, signature, token)
    if isinstance(checked, tuple):
        return checked
    try:
        outcomes = await submit_delivery(runtime, checked)
    except (InvalidData, DatabaseUnavailable) as exc:
        answer = answer_failure(exc)
        assert answer is not None
        return answer
    return answer_outcomes(checked, outcomes)


async def receive(
    request: Request,
    runtime: RuntimeDep,
    hmac: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    status, payload, headers = await confirm_delivery(
        runtime, await request.body(), request.headers.get(HEADER), hmac
    )
    response = Response(payload, status_code=status, media_type="application/json")
    for name, value in headers:
        response.headers[name.decode()] = value.decode()
    return response


PATHS = frozenset({"/payments/pix/confirmation", "/payments/pix/confirmation/pix"})
_SIGNATURE = HEADER.lower().encode()
JSON_HEADERS = [(b"content-type", b"application/json"), *headers.WITH_CSP]


def is_delivery(scope: Scope) -> bool:
    return scope["type"] == "http" and scope["path"] in PATHS and scope["method"] == "POST"


async def fast_path(
    runtime: Runtime, max_bytes: int, scope: Scope, receive: Receive, send: Send
) -> None:
    """The PSP's webhook straight from ASGI, before the framework's middleware, routing,
    dependency solving and per-request wrappers, which cost more than the confirmation
    itself under load (docs/performance-log.md). Same function, same answers as the route
    (which stays, for the OpenAPI description); the body limit and the security headers
    are applied here."""
    try:
        body = await _body(scope, receive, max_bytes)
        if body is None:
            return  # the client left
        status, payload, extra = await _answer(runtime, scope, body)
    except BodyTooLarge:
        status, payload, _ = error(
            413, "payload_too_large", f"bodies are limited to {max_bytes} bytes"
        )
        extra = [(b"connection", b"close")]
    except Exception:  # a bug: the PSP gets the error shape and retries
        log.exception("webhook failed")
        status, payload, extra = error(500, "internal_error", "an unexpected error occurred")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *JSON_HEADERS,
                (b"content-length", str(len(payload)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _body(scope: Scope, receive: Receive, max_bytes: int) -> bytes | None:
    """The whole body, read no further than max_bytes (a lying Content-Length included)."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
            raise BodyTooLarge
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def credentials(
    request_headers: list[tuple[bytes, bytes]], query_string: bytes
) -> tuple[str | None, str | None] | Answer:
    """The signature header and the `?hmac=` token, as the route reads them."""
    signature = None
    for name, value in request_headers:
        if name == _SIGNATURE:
            signature = value.decode("latin-1")
            break
    token = None
    if query_string:
        values = parse_qs(query_string.decode("latin-1")).get("hmac")
        token = values[0] if values else None
    if token is not None and len(token) > 200:
        return error(422, "invalid_request", "hmac: too long")
    return signature, token


async def _answer(runtime: Runtime, scope: Scope, body: bytes) -> Answer:
    found = credentials(scope["headers"], scope["query_string"])
    if len(found) == 3:
        return found
    signature, token = found
    return await confirm_delivery(runtime, body, signature, token)


def _explain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
    return str(exc) or "invalid Pix"


for path in ("/payments/pix/confirmation", "/payments/pix/confirmation/pix"):
    router.add_api_route(
        path,
        receive,
        methods=["POST"],
        response_model=None,
        responses=RESPONSES,
        openapi_extra=OPENAPI_BODY,
        summary="PSP confirmation webhook (API Pix body)",
        include_in_schema=path.endswith("confirmation"),
    )
