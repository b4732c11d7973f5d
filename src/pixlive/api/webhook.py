"""The PSP's confirmation webhook, in the Banco Central's API Pix format.

The raw body is read first, because the signature covers its exact bytes; only an
authenticated body is parsed. Each delivery runs as one use case in the group-commit
writer, so the 200 goes out after its Pix are on disk.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from pixlive import metrics
from pixlive.adapters.errors import DatabaseUnavailable, InvalidData
from pixlive.api.dependencies import RuntimeDep
from pixlive.api.models import ErrorOut, PixIn, WebhookIn, WebhookOut
from pixlive.domain.money import parse_amount
from pixlive.runtime import Runtime, utcnow
from pixlive.services.confirmation import IncomingPix, Outcome, confirm_pix
from pixlive.services.signature import HEADER, SignatureError, verify, verify_token
from pixlive.services.unit_of_work import UnitOfWork

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


async def _confirm_all(uow: UnitOfWork, items: list[IncomingPix]) -> list[Outcome]:
    now = utcnow()
    return [await confirm_pix(uow, item, now) for item in items]


def _error(status: int, code: str, message: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    return status, orjson.dumps({"error": {"code": code, "message": message}}), []


async def confirm_delivery(
    runtime: Runtime, body: bytes, signature: str | None, token: str | None
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The whole webhook, from the raw body to the answer (status, JSON, extra headers);
    shared by the route (for the OpenAPI description) and the fast path below."""
    settings = runtime.settings
    try:
        if settings.webhook_auth == "token":
            verify_token(settings.secret, token)
        else:
            verify(
                settings.secret, signature, body, time.time(), settings.webhook_tolerance_seconds
            )
    except SignatureError as exc:
        metrics.webhook_rejected.labels("auth").inc()
        return _error(401, "invalid_signature", str(exc))

    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        metrics.webhook_rejected.labels("malformed").inc()
        return _error(400, "invalid_json", "the body is not valid JSON")
    try:
        parsed = WebhookIn.model_validate(document)
        raw_items = document["pix"] if isinstance(document["pix"], list) else [document["pix"]]
        items = parsed.pix if isinstance(parsed.pix, list) else [parsed.pix]
        incoming = [_incoming(item, raw) for item, raw in zip(items, raw_items, strict=True)]
    except (ValidationError, ValueError, TypeError) as exc:
        metrics.webhook_rejected.labels("malformed").inc()
        return _error(422, "invalid_pix", _explain(exc))

    try:
        outcomes = await runtime.writer.run(
            lambda uow: _confirm_all(uow, incoming),
            charges=[item.txid for item in incoming if item.txid],
        )
    except InvalidData:
        return _error(422, "invalid_pix", "a value cannot be stored as given")
    except DatabaseUnavailable as exc:
        log.warning("webhook: database unavailable: %s", exc)
        status, payload, _ = _error(
            503, "database_unavailable", "the database is unreachable; retry later"
        )
        return status, payload, [(b"retry-after", b"5")]
    results = []
    for item, outcome in zip(incoming, outcomes, strict=True):
        metrics.webhook_pix.labels(outcome.value).inc()
        results.append(
            {
                "endToEndId": item.end_to_end_id,
                "outcome": outcome.value,
                "payment_id": item.txid if outcome in (Outcome.PAID, Outcome.MISMATCH) else None,
            }
        )
    return 200, orjson.dumps({"results": results}), []


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


class WebhookFastPath:
    """The PSP's webhook straight from ASGI, past the framework's routing, dependency
    solving and per-request wrappers, which cost more than the confirmation itself under
    load (docs/benchmarks.md, "Where the webhook's time goes"). Same function, same
    answers as the route; the body limit and security headers still wrap it."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in PATHS:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        signature = None
        for name, value in scope["headers"]:
            if name == _SIGNATURE:
                signature = value.decode("latin-1")
                break
        token = None
        if scope["query_string"]:
            values = parse_qs(scope["query_string"].decode("latin-1")).get("hmac")
            token = values[0] if values else None
        if token is not None and len(token) > 200:
            status, payload, headers = _error(422, "invalid_request", "hmac: too long")
        else:
            status, payload, headers = await confirm_delivery(
                self.state.runtime, b"".join(chunks), signature, token
            )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


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
