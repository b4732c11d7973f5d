"""Merchant API: create, list, cancel charges; and the public read of one charge."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Annotated
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from pixlive.adapters.qrcode import qr_png, qr_svg
from pixlive.api.dependencies import (
    ApiKeyDep,
    ChargeIdDep,
    IdempotencyKeyHeader,
    OptionalApiKeyDep,
    RuntimeDep,
)
from pixlive.api.errors import ApiError
from pixlive.api.models import ChargeCreate, ChargeList, ChargeOut, ErrorOut, MerchantChargeOut
from pixlive.api.pages import render_payment_page, wants_html
from pixlive.api.psp_errors import psp_errors
from pixlive.domain.charge import Payer, Status
from pixlive.domain.ids import is_charge_id
from pixlive.services import charges as service
from pixlive.services import psp_charges
from pixlive.services.charges import Idempotency, NewCharge
from pixlive.services.unit_of_work import jobs

router = APIRouter(tags=["charges"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "No valid API key"},
    404: {"model": ErrorOut, "description": "No such charge"},
    409: {"model": ErrorOut, "description": "Conflict"},
    429: {"model": ErrorOut, "description": "A limit was exceeded; see Retry-After"},
    502: {"model": ErrorOut, "description": "The PSP refused the charge (PIXLIVE_PSP=apipix)"},
    503: {"model": ErrorOut, "description": "The PSP or the database is unreachable"},
    422: {"model": ErrorOut, "description": "Invalid request"},
}


def _encode_cursor(created_ms: int, charge_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_ms}:{charge_id}".encode()).decode().rstrip("=")


# The newest moment a cursor may name: the end of year 9999, in ms, as a datetime can hold.
_CURSOR_MS_MAX = 253_402_300_799_999


def _decode_cursor(cursor: str) -> tuple[int, str]:
    """The (created_ms, id) a cursor of ours holds; anything else, however it was made, is
    refused before it reaches a query (a 30-digit time overflowed the database's INTEGER)."""
    invalid = ApiError(422, "invalid_cursor", "the cursor is not one this API gave")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid from exc
    created, _, charge_id = text.partition(":")
    if not (
        created.isascii()
        and created.isdigit()
        and len(created) <= len(str(_CURSOR_MS_MAX))
        and int(created) <= _CURSOR_MS_MAX
        and is_charge_id(charge_id)
    ):
        raise invalid
    return int(created), charge_id


@router.post(
    "/payments/pix",
    status_code=201,
    response_model=MerchantChargeOut,
    responses={
        **ERRORS,
        200: {
            "model": MerchantChargeOut,
            "description": "A repeated Idempotency-Key: the charge it first created",
        },
    },
    summary="Create a Pix charge",
)
async def create_charge(
    body: ChargeCreate,
    runtime: RuntimeDep,
    api_key: ApiKeyDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> MerchantChargeOut:
    runtime.create_rate.take(api_key.id)
    if (
        body.return_url
        and not runtime.settings.sandbox
        and urlsplit(body.return_url).scheme != "https"
    ):
        raise ApiError(422, "invalid_return_url", "in production, return_url must be https")
    command = NewCharge(
        value=body.value,
        expires_in=body.expires_in,
        description=body.description,
        payer=Payer(**body.payer.model_dump()) if body.payer else None,
        metadata=body.metadata,
        return_url=body.return_url,
    )
    idempotency = None
    if idempotency_key is not None:
        fingerprint = hashlib.sha256(
            orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        idempotency = Idempotency(api_key.id, idempotency_key, fingerprint)
    now = runtime.clock.now()
    if runtime.psp is not None:
        with psp_errors():
            charge, created = await psp_charges.create_at_psp(
                lambda job: runtime.writer.run(jobs, job),
                runtime.db.read,
                runtime.psp,
                command,
                runtime.receiver,
                now,
                secret=runtime.settings.secret,
                idempotency=idempotency,
            )
    else:
        charge, created = await runtime.writer.run(
            jobs,
            lambda uow: service.create_charge(uow, command, runtime.receiver, now, idempotency),
        )
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return MerchantChargeOut.of(
        service.as_seen_at(charge, runtime.clock.now()), runtime.settings.base_url
    )


@router.get("/payments/pix", response_model=ChargeList, responses=ERRORS, summary="List charges")
async def list_charges(
    runtime: RuntimeDep,
    api_key: ApiKeyDep,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ChargeList:
    before = _decode_cursor(cursor) if cursor else None
    async with runtime.db.read() as conn:
        # One more than asked tells whether there is a next page.
        found = await service.list_charges(
            conn, runtime.clock.now(), status=status, before=before, limit=limit + 1
        )
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        last = page[-1]
        next_cursor = _encode_cursor(int(last.created_at.timestamp() * 1000), last.id)
    base = runtime.settings.base_url
    return ChargeList(data=[MerchantChargeOut.of(c, base) for c in page], next_cursor=next_cursor)


@router.post(
    "/payments/pix/{payment_id}/cancel",
    response_model=MerchantChargeOut,
    responses=ERRORS,
    summary="Cancel an ACTIVE charge",
)
async def cancel_charge(
    payment_id: ChargeIdDep, runtime: RuntimeDep, api_key: ApiKeyDep
) -> MerchantChargeOut:
    now = runtime.clock.now()
    if runtime.psp is not None:
        with psp_errors():
            charge = await psp_charges.cancel_at_psp(
                lambda job: runtime.writer.run(jobs, job),
                runtime.db.read,
                runtime.psp,
                payment_id,
                now,
            )
    else:
        charge = await runtime.writer.run(
            jobs, lambda uow: service.cancel_charge(uow, payment_id, now)
        )
    return MerchantChargeOut.of(charge, runtime.settings.base_url)


@router.get(
    "/payments/pix/{payment_id}",
    response_model=ChargeOut | MerchantChargeOut,
    responses={**ERRORS, 200: {"content": {"text/html": {}}}},
    summary="The payment page (HTML) or the charge (JSON)",
)
async def read_charge(
    payment_id: ChargeIdDep,
    request: Request,
    runtime: RuntimeDep,
    api_key: OptionalApiKeyDep,
) -> ChargeOut | MerchantChargeOut | HTMLResponse:
    async with runtime.db.read() as conn:
        charge = await service.get_charge(conn, payment_id, runtime.clock.now())
    if wants_html(request):
        return render_payment_page(request, runtime, charge)
    base = runtime.settings.base_url
    return MerchantChargeOut.of(charge, base) if api_key else ChargeOut.of(charge, base)


@router.get(
    "/payments/pix/{payment_id}/qrcode.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, 404: {"model": ErrorOut}},
    summary="QR code of the charge's BR Code (SVG)",
)
async def qrcode_svg(payment_id: ChargeIdDep, runtime: RuntimeDep) -> Response:
    async with runtime.db.read() as conn:
        charge = await service.get_charge(conn, payment_id, runtime.clock.now())
    return Response(
        qr_svg(charge.brcode),
        media_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=3600"},
    )


@router.get(
    "/payments/pix/{payment_id}/qrcode.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"model": ErrorOut}},
    summary="QR code of the charge's BR Code (PNG)",
)
async def qrcode_png(payment_id: ChargeIdDep, runtime: RuntimeDep) -> Response:
    async with runtime.db.read() as conn:
        charge = await service.get_charge(conn, payment_id, runtime.clock.now())
    return Response(
        qr_png(charge.brcode),
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=3600"},
    )
