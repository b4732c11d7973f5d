"""Sandbox only: a home page that makes demo charges, and "Simular pagamento".

The simulation goes through the real webhook over HTTP, signed as a PSP would sign it,
so that what the sandbox shows is exactly what production does.
"""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pixlive.api.dependencies import ChargeIdDep, RuntimeDep
from pixlive.api.pages import templates
from pixlive.domain.errors import InvalidAmount
from pixlive.domain.money import format_amount, parse_amount
from pixlive.runtime import utcnow
from pixlive.services import charges as service
from pixlive.services.charges import NewCharge
from pixlive.services.psp import signed_headers, webhook_body

router = APIRouter(include_in_schema=False)

SIMULATED_E2E_PREFIX = "ESANDBX"  # + the 25-char charge id: 32 chars, as an endToEndId has


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "home.html", {})


@router.post("/sandbox/charges")
async def create_demo_charge(
    request: Request,
    runtime: RuntimeDep,
    value: Annotated[str, Form(max_length=20)] = "10.00",
    description: Annotated[str, Form(max_length=140)] = "",
) -> Response:
    try:
        cents = parse_amount(value.strip().replace(",", "."))
    except InvalidAmount as exc:
        return templates.TemplateResponse(
            request,
            "home.html",
            {"error": str(exc), "value": value, "description": description},
            status_code=422,
        )
    command = NewCharge(value=cents, expires_in=1800, description=description.strip() or None)
    now = utcnow()
    charge, _ = await runtime.writer.run(
        lambda uow: service.create_charge(uow, command, runtime.receiver, now)
    )
    return RedirectResponse(f"/payments/pix/{charge.id}", status_code=303)


@router.post("/sandbox/payments/{payment_id}/simulate")
async def simulate(payment_id: ChargeIdDep, request: Request, runtime: RuntimeDep) -> Response:
    async with runtime.db.read() as conn:
        charge = await service.get_charge(conn, payment_id, utcnow())
    # One endToEndId per charge: a double click (or a resent form) is then the PSP retrying,
    # a `duplicate`, and not a second Pix booked as a mismatch against a paid charge.
    body = webhook_body(charge.id, format_amount(charge.value), SIMULATED_E2E_PREFIX + charge.id)
    headers = signed_headers(runtime.settings.secret, body)
    params = {}
    if runtime.settings.webhook_auth == "token":
        params["hmac"] = runtime.settings.secret
    # The signed request goes through this very application, every middleware and the
    # webhook's own authentication included, but not through the network: neither a Host
    # header nor a proxy's X-Forwarded-Proto (nor an mTLS listener) can send it elsewhere.
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://pixlive", timeout=10
    ) as client:
        answer = await client.post(
            "/payments/pix/confirmation", content=body, headers=headers, params=params
        )
    if answer.status_code != 200:
        return Response(answer.content, status_code=502, media_type="application/json")
    return RedirectResponse(f"/payments/pix/{charge.id}", status_code=303)
