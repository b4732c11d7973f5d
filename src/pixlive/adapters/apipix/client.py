"""An async API Pix client on httpx: the PSP port of services/psp_port.py.

OAuth2 client credentials, the token cached until shortly before it expires and fetched
again once when the PSP answers 401 anyway (a token revoked early, clocks apart); mTLS with
the merchant's certificate; timeouts; idempotent calls retried with backoff; the PSP's
RFC 7807 problems and transport failures translated into the port's errors.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from pixlive import metrics
from pixlive.adapters.apipix.profiles import PROFILES, Profile
from pixlive.domain.errors import InvalidAmount
from pixlive.domain.money import format_amount, parse_amount
from pixlive.services.psp_port import (
    Cob,
    CobRequest,
    PixPage,
    PixReceived,
    PspError,
    PspNotFound,
    PspRefused,
    PspUnavailable,
)

log = logging.getLogger("pixlive.psp")
REMOVED = "REMOVIDA_PELO_USUARIO_RECEBEDOR"
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class ApiPixConfig:
    api_url: str
    client_id: str
    client_secret: str
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    token_url: str | None = None
    profile: str = "standard"
    timeout: float = 10.0
    attempts: int = 3  # for idempotent calls
    backoff: float = 0.2  # seconds, doubled per attempt
    # The token is renewed this long before its `expires_in` runs out.
    token_margin: float = 60.0


def tls_context(config: ApiPixConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=config.ca)
    if config.cert:
        context.load_cert_chain(config.cert, config.key)
    return context


def _problem(answer: httpx.Response) -> tuple[str | None, str]:
    """The problem's kind (last segment of `type`) and a message from the PSP's answer."""
    try:
        body = answer.json()
    except ValueError:
        return None, f"the PSP answered {answer.status_code}"
    if not isinstance(body, dict):
        return None, f"the PSP answered {answer.status_code}"
    kind = str(body.get("type", "")).rstrip("/").rsplit("/", 1)[-1] or None
    text = body.get("detail") or body.get("title") or body.get("error_description") or ""
    violations = body.get("violacoes")
    if isinstance(violations, list) and violations:
        first = violations[0] if isinstance(violations[0], dict) else {}
        text = f"{text} ({first.get('propriedade', '?')}: {first.get('razao', '')})"
    return kind, f"the PSP answered {answer.status_code} {kind or ''}: {text}".strip()


def _horario(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


class ApiPixClient:
    def __init__(
        self,
        config: ApiPixConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.profile = config.profile
        self._profile: Profile = PROFILES[config.profile]
        self._api = config.api_url.rstrip("/")
        origin = urlsplit(self._api)
        self._token_url = config.token_url or (
            f"{origin.scheme}://{origin.netloc}{self._profile.oauth_path}"
        )
        self._clock = clock
        self._sleep = sleep
        options: dict[str, Any] = {"timeout": config.timeout}
        if transport is not None:
            options["transport"] = transport
        else:
            options["verify"] = tls_context(config)
        self._http = httpx.AsyncClient(**options)
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        self.tokens_fetched = 0

    async def close(self) -> None:
        await self._http.aclose()

    # -- OAuth2 ----------------------------------------------------------------------

    async def _access_token(self, *, stale: str | None = None) -> str:
        async with self._token_lock:
            # Another call may have renewed it while this one waited for the lock.
            if (
                self._token is not None
                and self._token != stale
                and self._clock() < self._token_expires
            ):
                return self._token
            data = {"grant_type": "client_credentials"}
            if self._profile.oauth_scopes:
                data["scope"] = self._profile.oauth_scopes
            try:
                answer = await self._http.post(
                    self._token_url,
                    data=data,
                    auth=(self.config.client_id, self.config.client_secret),
                )
            except httpx.HTTPError as exc:
                metrics.psp_errors.labels(kind="unavailable").inc()
                raise PspUnavailable(f"cannot reach the PSP's token endpoint: {exc}") from exc
            if answer.status_code != 200:
                kind = "unavailable" if answer.status_code >= 500 else "refused"
                metrics.psp_errors.labels(kind=kind).inc()
                error = PspUnavailable if answer.status_code >= 500 else PspRefused
                # Never the body's secrets: the status and the OAuth2 error code only.
                try:
                    code = str(answer.json().get("error", ""))
                except ValueError:
                    code = ""
                raise error(
                    f"the PSP refused the client credentials ({answer.status_code} {code})".strip(),
                    status=answer.status_code,
                )
            body = answer.json()
            self._token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 3600))
            self._token_expires = self._clock() + max(
                lifetime - self.config.token_margin, lifetime / 2
            )
            self.tokens_fetched += 1
            return self._token

    # -- requests --------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        attempts = self.config.attempts if idempotent else 1
        refreshed = False
        attempt = 0
        while True:
            token = await self._access_token()
            try:
                answer = await self._http.request(
                    method,
                    self._api + path,
                    json=json,
                    params=params,
                    headers={"Authorization": f"Bearer {token}", **(headers or {})},
                )
            except httpx.HTTPError as exc:
                attempt += 1
                if attempt < attempts:
                    await self._sleep(self.config.backoff * 2 ** (attempt - 1))
                    continue
                metrics.psp_errors.labels(kind="unavailable").inc()
                raise PspUnavailable(f"cannot reach the PSP: {type(exc).__name__}") from exc
            if answer.status_code == 401 and not refreshed:
                refreshed = True
                await self._access_token(stale=token)
                continue
            if answer.status_code in RETRIED_STATUSES:
                attempt += 1
                if attempt < attempts:
                    await self._sleep(self.config.backoff * 2 ** (attempt - 1))
                    continue
            if answer.status_code >= 400:
                kind, message = _problem(answer)
                error: type[PspError]
                if answer.status_code >= 500 or answer.status_code == 429:
                    error = PspUnavailable
                elif answer.status_code == 404:
                    error = PspNotFound
                else:
                    error = PspRefused
                metrics.psp_errors.labels(kind=error.kind).inc()
                raise error(message, status=answer.status_code, problem=kind)
            return answer

    def _cob(self, body: dict[str, Any]) -> Cob:
        try:
            return Cob(
                txid=str(body["txid"]),
                status=str(body["status"]),
                value=parse_amount(body["valor"]["original"], strict=True),
                chave=str(body.get("chave", "")),
                pix_copia_e_cola=str(body.get("pixCopiaECola", "")),
                location=body.get("location") or (body.get("loc") or {}).get("location"),
            )
        except (KeyError, TypeError, InvalidAmount) as exc:
            metrics.psp_errors.labels(kind="invalid_answer").inc()
            raise PspUnavailable(
                f"the PSP's cob is not as the API Pix describes it: {exc}"
            ) from exc

    # -- the port --------------------------------------------------------------------

    async def create_cob(self, request: CobRequest) -> Cob:
        body: dict[str, Any] = {
            "calendario": {"expiracao": request.expires_in},
            "valor": {"original": format_amount(request.value)},
            "chave": request.chave,
        }
        if request.description:
            body["solicitacaoPagador"] = request.description[:140]
        payer = request.payer
        if payer is not None and payer.name and (payer.cpf or payer.cnpj):
            document = {"cpf": payer.cpf} if payer.cpf else {"cnpj": payer.cnpj}
            body["devedor"] = {**document, "nome": payer.name}
        path = f"/cob/{quote(request.txid, safe='')}"
        try:
            # A PUT of one txid is idempotent by the txid: a retry after a lost answer finds
            # the cob it made, below.
            answer = await self._call("PUT", path, idempotent=True, json=body)
        except PspRefused as refused:
            if refused.status != 400 or isinstance(refused, PspNotFound):
                raise
            existing = await self._existing(request)
            if existing is None:
                raise
            return existing
        return self._cob(answer.json())

    async def _existing(self, request: CobRequest) -> Cob | None:
        """The cob of this txid when it is the one this request would have made."""
        try:
            cob = await self.get_cob(request.txid)
        except PspNotFound:
            return None
        if cob.value == request.value and cob.chave == request.chave and cob.status == "ATIVA":
            return cob
        return None

    async def get_cob(self, txid: str) -> Cob:
        answer = await self._call("GET", f"/cob/{quote(txid, safe='')}", idempotent=True)
        return self._cob(answer.json())

    async def cancel_cob(self, txid: str) -> Cob:
        try:
            answer = await self._call(
                "PATCH", f"/cob/{quote(txid, safe='')}", idempotent=True, json={"status": REMOVED}
            )
        except PspRefused as refused:
            if isinstance(refused, PspNotFound):
                raise
            cob = await self.get_cob(txid)
            if cob.status == REMOVED:
                return cob  # a retry after a lost answer: it is done
            raise
        return self._cob(answer.json())

    async def list_pix(self, start: datetime, end: datetime, page: int) -> PixPage:
        answer = await self._call(
            "GET",
            "/pix",
            idempotent=True,
            params={
                "inicio": _stamp(start),
                "fim": _stamp(end),
                "paginacao.paginaAtual": str(page),
                "paginacao.itensPorPagina": "1000",
            },
        )
        body = answer.json()
        items = []
        for raw in body.get("pix") or []:
            try:
                items.append(
                    PixReceived(
                        end_to_end_id=str(raw["endToEndId"]),
                        txid=raw.get("txid") or None,
                        value=parse_amount(raw["valor"], strict=True),
                        horario=_horario(str(raw["horario"])),
                        raw=raw,
                    )
                )
            except (KeyError, ValueError, TypeError) as exc:
                # One malformed entry must not hide the others; it is logged to be looked at.
                log.warning("GET /pix: an entry the API Pix would not write: %s", exc)
        pagination = (body.get("parametros") or {}).get("paginacao") or {}
        return PixPage(
            items=items,
            page=int(pagination.get("paginaAtual", page)),
            pages=int(pagination.get("quantidadeDePaginas", 1)),
        )

    async def put_webhook(self, chave: str, url: str) -> None:
        headers = (
            {"x-skip-mtls-checking": "true"}
            if self._profile.webhook_hmac and "hmac=" in url
            else None
        )
        await self._call(
            "PUT",
            f"/webhook/{quote(chave, safe='')}",
            idempotent=True,
            json={"webhookUrl": url},
            headers=headers,
        )

    async def get_webhook(self, chave: str) -> str | None:
        try:
            answer = await self._call("GET", f"/webhook/{quote(chave, safe='')}", idempotent=True)
        except PspNotFound:
            return None
        url = answer.json().get("webhookUrl")
        return str(url) if url else None

    async def delete_webhook(self, chave: str) -> None:
        await self._call("DELETE", f"/webhook/{quote(chave, safe='')}", idempotent=True)
