"""Server-rendered HTML: the payment page, the sandbox home, HTML error pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from pixlive.api.models import ChargeOut
from pixlive.domain.charge import Charge, Status
from pixlive.domain.money import format_brl
from pixlive.runtime import Runtime

WEB = Path(__file__).resolve().parent.parent / "web"
templates = Jinja2Templates(directory=WEB / "templates")

STATUS_LABELS = {
    Status.ACTIVE: "Aguardando pagamento",
    Status.PAID: "Pagamento confirmado",
    Status.EXPIRED: "Cobrança expirada",
    Status.CANCELLED: "Cobrança cancelada",
}


def wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept


def render_payment_page(request: Request, runtime: Runtime, charge: Charge) -> HTMLResponse:
    public = ChargeOut.of(charge, runtime.settings.base_url).model_dump(mode="json")
    return templates.TemplateResponse(
        request,
        "payment.html",
        {
            "charge": public,
            "amount_brl": format_brl(charge.value),
            "status_label": STATUS_LABELS[charge.status],
            "sandbox": runtime.settings.sandbox,
            "simulate_url": f"/sandbox/payments/{charge.id}/simulate",
            "qr_svg_path": f"/payments/pix/{charge.id}/qrcode.svg",
        },
        headers={"Cache-Control": "no-store"},
    )


def render_error(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "error.html", {"title": title, "message": message}, status_code=status
    )
