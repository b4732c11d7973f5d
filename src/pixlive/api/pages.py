"""Server-rendered HTML: the payment page, the sandbox home, HTML error pages, the logo."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from pixlive.api.models import ChargeOut
from pixlive.domain.charge import Charge, Status
from pixlive.domain.money import format_brl
from pixlive.runtime import Runtime
from pixlive.settings import MissingSettings, Settings

WEB = Path(__file__).resolve().parent.parent / "web"
templates = Jinja2Templates(directory=WEB / "templates")

STATUS_LABELS = {
    Status.ACTIVE: "Aguardando pagamento",
    Status.PAID: "Pagamento confirmado",
    Status.EXPIRED: "Cobrança expirada",
    Status.CANCELLED: "Cobrança cancelada",
}

LOGO_PATH = "/merchant/logo"
LOGO_TYPES = {".png", ".svg", ".jpg", ".jpeg", ".webp", ".gif"}
LOGO_MAX_BYTES = 512 * 1024


def _brazil() -> tzinfo:
    # Without JavaScript the page can only guess the payer's zone: Brasília time, where most
    # payers are (no daylight saving since 2019). The script rewrites it in the phone's zone.
    try:
        return ZoneInfo("America/Sao_Paulo")
    except ZoneInfoNotFoundError:  # a system without the zone database
        return timezone(timedelta(hours=-3))


BRAZIL = _brazil()


def deadline_text(expires_at: datetime, now: datetime) -> str:
    """ "Pague até 22:29" today; "Pague até 02/12 às 22:29" on another day."""
    local, today = expires_at.astimezone(BRAZIL), now.astimezone(BRAZIL)
    if local.date() == today.date():
        return f"Pague até {local:%H:%M}"
    return f"Pague até {local:%d/%m} às {local:%H:%M}"


def moment_text(moment: datetime) -> str:
    """ "01/12/2026 às 22:03", in Brasília time."""
    local = moment.astimezone(BRAZIL)
    return f"{local:%d/%m/%Y} às {local:%H:%M}"


def wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept


def render_payment_page(request: Request, runtime: Runtime, charge: Charge) -> HTMLResponse:
    settings = runtime.settings
    public = ChargeOut.of(charge, settings.base_url).model_dump(mode="json")
    return templates.TemplateResponse(
        request,
        "payment.html",
        {
            "charge": public,
            "amount_brl": format_brl(charge.value),
            "status_label": STATUS_LABELS[charge.status],
            "sandbox": settings.sandbox,
            "simulate_url": f"/sandbox/payments/{charge.id}/simulate",
            "qr_svg_path": f"/payments/pix/{charge.id}/qrcode.svg",
            "merchant_name": settings.receiver_name,
            "logo_url": LOGO_PATH if settings.merchant_logo_url else None,
            "deadline": deadline_text(charge.expires_at, runtime.clock.now()),
            "paid_at": moment_text(charge.paid_at) if charge.paid_at else "",
            "return_url": charge.return_url,
            "redirect_seconds": settings.return_redirect_seconds if charge.return_url else 0,
        },
        headers={"Cache-Control": "no-store"},
    )


# Error pages --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorText:
    title: str
    message: str


ERROR_TEXTS: dict[int, ErrorText] = {
    400: ErrorText("Pedido inválido", "O endereço ou o formulário enviado não está correto."),
    401: ErrorText("Acesso restrito", "Esta página é só para quem tem uma chave de acesso."),
    403: ErrorText("Acesso negado", "Você não tem permissão para ver esta página."),
    404: ErrorText(
        "Página não encontrada",
        "Confira o endereço: ele pode estar incompleto ou ter um erro de digitação.",
    ),
    405: ErrorText("Ação não permitida", "Esta página não aceita esse tipo de pedido."),
    410: ErrorText(
        "Esta página não existe mais",
        "O link que você abriu não vale mais. Peça um novo a quem o enviou.",
    ),
    413: ErrorText("Envio grande demais", "O que foi enviado passa do tamanho permitido."),
    422: ErrorText("Dados inválidos", "Confira os dados enviados e tente de novo."),
    429: ErrorText(
        "Muitas tentativas seguidas",
        "Espere alguns segundos e tente de novo.",
    ),
    500: ErrorText(
        "Algo deu errado do nosso lado",
        "Tente de novo em alguns instantes. Se você já pagou, o seu pagamento não se perdeu.",
    ),
    503: ErrorText(
        "Serviço indisponível no momento",
        "Tente de novo em alguns instantes. Se você já pagou, o seu pagamento não se perdeu.",
    ),
}
CHARGE_NOT_FOUND = ErrorText(
    "Cobrança não encontrada",
    "Confira o link que você recebeu: ele pode estar incompleto. Se o problema continuar, "
    "peça o link de novo a quem enviou a cobrança.",
)


def error_text(status: int, path: str) -> ErrorText:
    if status == 404 and path.startswith("/payments/pix/"):
        return CHARGE_NOT_FOUND
    if status in ERROR_TEXTS:
        return ERROR_TEXTS[status]
    return ERROR_TEXTS[500] if status >= 500 else ERROR_TEXTS[400]


def render_error_page(
    request: Request, status: int, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """The pt-BR page of an error, for a browser (the API answers JSON to everyone else)."""
    text = error_text(status, request.url.path)
    runtime = getattr(request.app.state, "runtime", None)
    home = "/" if runtime is not None and runtime.settings.sandbox else None
    return templates.TemplateResponse(
        request,
        "error.html",
        {"title": text.title, "message": text.message, "status": status, "home": home},
        status_code=status,
        headers={**(headers or {}), "Cache-Control": "no-store"},
    )


# The merchant's logo --------------------------------------------------------------------------


@dataclass(frozen=True)
class Logo:
    content: bytes
    media_type: str


def logo_file(setting: str) -> Path:
    """The file that PIXLIVE_MERCHANT_LOGO_URL names: a path or a file: URL. A logo on
    another site is refused: the page's CSP loads images from its own origin only."""
    parsed = urlsplit(setting)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme in ("http", "https"):
        raise MissingSettings(
            "PIXLIVE_MERCHANT_LOGO_URL must be a file that pixlive serves itself "
            "(a path or a file:// URL), not a web address: the payment page loads nothing "
            "from another origin"
        )
    return Path(setting)


def load_logo(settings: Settings) -> Logo | None:
    if not settings.merchant_logo_url:
        return None
    path = logo_file(settings.merchant_logo_url)
    suffix = path.suffix.lower()
    if suffix not in LOGO_TYPES:
        raise MissingSettings(
            "PIXLIVE_MERCHANT_LOGO_URL must be a " + ", ".join(sorted(LOGO_TYPES)) + " file"
        )
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise MissingSettings(
            f"PIXLIVE_MERCHANT_LOGO_URL: cannot read {path}: {exc.strerror}"
        ) from exc
    if len(content) > LOGO_MAX_BYTES:
        raise MissingSettings("PIXLIVE_MERCHANT_LOGO_URL: the logo is larger than 512 KiB")
    media_type = "image/svg+xml" if suffix == ".svg" else mimetypes.types_map[suffix]
    return Logo(content, media_type)


def logo_router(logo: Logo | None) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    if logo is not None:

        @router.get(LOGO_PATH)
        async def merchant_logo() -> Response:
            return Response(
                logo.content,
                media_type=logo.media_type,
                headers={"Cache-Control": "public, max-age=3600"},
            )

    return router
