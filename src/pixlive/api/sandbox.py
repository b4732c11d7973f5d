"""Sandbox only: a home page that makes demo charges, and "Simular pagamento".

The simulation goes through the real webhook over HTTP, signed as a PSP would sign it,
so that what the sandbox shows is exactly what production does.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pixlive.api import webhook
from pixlive.api.dependencies import ChargeIdDep, RuntimeDep
from pixlive.api.pages import templates
from pixlive.domain.money import MAX_CENTS, MIN_CENTS, format_amount
from pixlive.services import charges as service
from pixlive.services.charges import NewCharge
from pixlive.services.psp import signed_headers, webhook_body
from pixlive.services.signature import HEADER
from pixlive.services.unit_of_work import jobs

router = APIRouter(include_in_schema=False)

SIMULATED_E2E_PREFIX = "ESANDBX"  # + the 25-char charge id: 32 chars, as an endToEndId has

# How Brazilians write money: 1234,56 or 1.234,56 (a dot between thousands); 10.50 with a
# point is taken too, as the API writes it. "1.234" alone could be a thousand reais or a
# mistyped 1.23 (it is 1,000 times the other): it is refused, with the way to write it.
_BRL = re.compile(
    r"(?:R\$\s*)?(?:"
    r"(?P<grouped>[0-9]{1,3}(?:\.[0-9]{3})+),(?P<grouped_cents>[0-9]{1,2})"
    r"|(?P<int>[0-9]+)(?:,(?P<comma>[0-9]{1,2})|\.(?P<point>[0-9]{1,2}))?"
    r")"
)
_GROUPED_ONLY = re.compile(r"(?:R\$\s*)?[0-9]{1,3}(?:\.[0-9]{3})+")
DESCRIPTION_MAX = 140


class FormError(ValueError):
    """What the payer typed cannot be used; the message is in Portuguese, for the page."""


def parse_brl(text: str) -> int:
    """Centavos from what a person types in the form: "1.234,56", "1234,56", "10.50", "10"."""
    text = text.strip()
    found = _BRL.fullmatch(text)
    if not found:
        if _GROUPED_ONLY.fullmatch(text):
            raise FormError(
                f"Escreva também os centavos, para não haver engano: por exemplo {text},00."
            )
        raise FormError(
            "Não entendemos o valor. Use só números, com vírgula antes dos centavos: "
            "por exemplo 10,00 ou 1.234,56."
        )
    whole = (found.group("grouped") or found.group("int")).replace(".", "")
    cents_text = found.group("grouped_cents") or found.group("comma") or found.group("point") or "0"
    if len(whole) > 10:
        raise FormError("O valor máximo é R$ 9.999.999.999,99.")
    cents = int(whole) * 100 + int(cents_text.ljust(2, "0"))
    if cents < MIN_CENTS:
        raise FormError("O valor precisa ser de pelo menos R$ 0,01.")
    if cents > MAX_CENTS:
        raise FormError("O valor máximo é R$ 9.999.999.999,99.")
    return cents


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "home.html", {})


@router.post("/sandbox/charges")
async def create_demo_charge(
    request: Request,
    runtime: RuntimeDep,
    value: Annotated[str, Form(max_length=1000)] = "10,00",
    description: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    # Checked here rather than by the form's declaration, so that the page can say what is
    # wrong in Portuguese instead of answering an error in JSON.
    errors: dict[str, str] = {}
    cents = 0
    try:
        cents = parse_brl(value)
    except FormError as exc:
        errors["value"] = str(exc)
    description = description.strip()
    if len(description) > DESCRIPTION_MAX:
        errors["description"] = f"A descrição pode ter até {DESCRIPTION_MAX} caracteres."
    elif "\x00" in description:
        errors["description"] = "A descrição tem um caractere que não pode ser guardado."
    if errors:
        return templates.TemplateResponse(
            request,
            "home.html",
            {"errors": errors, "value": value, "description": description},
            status_code=422,
        )
    command = NewCharge(value=cents, expires_in=1800, description=description or None)
    now = runtime.clock.now()
    charge, _ = await runtime.writer.run(
        jobs, lambda uow: service.create_charge(uow, command, runtime.receiver, now)
    )
    return RedirectResponse(f"/payments/pix/{charge.id}", status_code=303)


@router.post("/sandbox/payments/{payment_id}/simulate")
async def simulate(payment_id: ChargeIdDep, request: Request, runtime: RuntimeDep) -> Response:
    async with runtime.db.read() as conn:
        charge = await service.get_charge(conn, payment_id, runtime.clock.now())
    # One endToEndId per charge: a double click (or a resent form) is then the PSP retrying,
    # a `duplicate`, and not a second Pix booked as a mismatch against a paid charge.
    body = webhook_body(charge.id, format_amount(charge.value), SIMULATED_E2E_PREFIX + charge.id)
    signature = signed_headers(runtime.settings.secret, body)[HEADER]
    token = runtime.settings.secret if runtime.settings.webhook_auth == "token" else None
    # The signed delivery goes through the webhook's own checks, authentication included,
    # but not through the network: neither a Host header nor a proxy's X-Forwarded-Proto
    # (nor an mTLS listener) can send it elsewhere.
    status, payload, _ = await webhook.confirm_delivery(runtime, body, signature, token)
    if status != 200:
        return Response(payload, status_code=502, media_type="application/json")
    return RedirectResponse(f"/payments/pix/{charge.id}", status_code=303)
