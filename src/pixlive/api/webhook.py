"""The PSP's confirmation webhook, in the Banco Central's API Pix format.

The raw body is read first, because the signature covers its exact bytes; only an
authenticated body is parsed. Each delivery runs as one use case in the group-commit
writer, so the 200 goes out after its Pix are on disk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import ValidationError

from pixlive import metrics
from pixlive.adapters.errors import DatabaseUnavailable, InvalidData
from pixlive.api import headers
from pixlive.api.models import ErrorOut, PixIn, WebhookIn, WebhookOut
from pixlive.api.streams import not_served_here
from pixlive.domain.money import parse_amount
from pixlive.runtime import Runtime
from pixlive.services.confirmation import IncomingPix, Outcome, confirm
from pixlive.services.signature import HEADER, SignatureError, verify, verify_token

router = APIRouter(tags=["PSP webhook"])
log = logging.getLogger("pixlive.webhook")


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """The client certificate TLS verified on the delivery's connection (`--client-ca`)."""

    subject: str  # e.g. "CN=psp.example,O=Banco"
    fingerprint: str  # SHA-256 of the DER certificate, lowercase hex
    der: bytes


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
    runtime: Runtime,
    body: bytes,
    signature: str | None,
    token: str | None,
    *,
    certificate: ClientCertificate | None = None,
) -> Answer | list[IncomingPix]:
    """The delivery's Pix, once it is authenticated and well formed; else the refusal.
    Synchronous, like `answer_outcomes` and `answer_failure`: the connection
    (server/webhook.py) runs them with no coroutine of its own. `certificate` is the TLS
    client certificate the connection verified, if any."""
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
    """A whole delivery in the process, from the raw body to the answer, through the same
    checks as the connection's: the sandbox's "Simular pagamento" button sends its signed
    delivery here, where no Host header or proxy can send it elsewhere."""
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
    hmac: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    # Described here (api/document.py); answered by `pixlive serve`'s connection
    # (server/webhook.py), the only way in, which never hands these paths to the app.
    return not_served_here()


PATHS = frozenset({"/payments/pix/confirmation", "/payments/pix/confirmation/pix"})
_SIGNATURE = HEADER.lower().encode()
JSON_HEADERS = [(b"content-type", b"application/json"), *headers.WITH_CSP]


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
