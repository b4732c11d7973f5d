"""The emulator's two HTTP faces.

`api_app`: the API Pix of the receiving PSP, reached by the merchant over mTLS with an
OAuth2 bearer token (client credentials, scopes as the spec's `security` lists them).
`public_app`: what the rest of the world reaches without the merchant's certificate: the
location endpoint (the payer's app fetches the charge as a signed JWS) and the payer's
side (`POST /_emulator/pay`, a Pix arriving from another PSP).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from pixlive.emulator import jws
from pixlive.emulator.delivery import Deliverer, Knobs
from pixlive.emulator.pki import Credentials
from pixlive.emulator.profiles import Profile
from pixlive.emulator.state import ANY_TXID, E2E, Ledger, Pix, Problem, invalid, iso

ALL_SCOPES = frozenset(
    {
        "cob.write",
        "cob.read",
        "pix.write",
        "pix.read",
        "webhook.write",
        "webhook.read",
        "payloadlocation.write",
        "payloadlocation.read",
    }
)


@dataclass
class Token:
    scopes: frozenset[str]
    expires_at: datetime


@dataclass
class Emulator:
    ledger: Ledger
    profile: Profile
    credentials: Credentials
    knobs: Knobs
    deliverer: Deliverer | None
    signing_key: bytes
    signing_cert: bytes
    token_ttl: int = 3600
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    tokens: dict[str, Token] = field(default_factory=dict)
    tokens_issued: int = 0
    settle_tasks: set[asyncio.Task[None]] = field(default_factory=set)


def _problem(exc: Problem) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, media_type="application/problem+json")


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise Problem(
            400, "RequisicaoInvalida", "Requisição inválida", "o corpo não é JSON"
        ) from exc
    if not isinstance(body, dict):
        raise Problem(
            400, "RequisicaoInvalida", "Requisição inválida", "o corpo deve ser um objeto"
        )
    return body


def _time(value: str | None, name: str) -> datetime:
    if not value:
        raise invalid("PixConsultaInvalida", f"{name} é obrigatório", name)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise invalid(
            "PixConsultaInvalida", f"{name} deve respeitar a RFC 3339", name, value
        ) from exc
    if moment.tzinfo is None:
        raise invalid("PixConsultaInvalida", f"{name} deve trazer o fuso", name, value)
    return moment


def _int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if re.fullmatch(r"\d{1,9}", value) is None or not low <= int(value) <= high:
        raise invalid(
            "PixConsultaInvalida", f"{name} deve ser um inteiro entre {low} e {high}", name, value
        )
    return int(value)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def problem(request: Request, exc: Problem) -> Response:
        return _problem(exc)


def api_app(emulator: Emulator) -> FastAPI:
    app = FastAPI(title="pixlive psp-emulator (API Pix)", openapi_url=None, docs_url=None)
    _install_errors(app)
    prefix = emulator.profile.api_prefix
    ledger = emulator.ledger

    @app.middleware("http")
    async def down(request: Request, call_next: Any) -> Response:
        if emulator.knobs.down and not request.url.path.startswith("/_emulator"):
            return _problem(
                Problem(503, "ServicoIndisponivel", "Serviço indisponível", "o PSP está fora do ar")
            )
        response: Response = await call_next(request)
        return response

    @app.post(emulator.profile.token_path)
    async def token(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        form = await request.form()
        client_id = client_secret = ""
        if header.lower().startswith("basic "):
            try:
                client_id, _, client_secret = (
                    base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                pass
        else:
            client_id = str(form.get("client_id", ""))
            client_secret = str(form.get("client_secret", ""))
        good = hmac.compare_digest(client_id, emulator.credentials.client_id) & hmac.compare_digest(
            client_secret, emulator.credentials.client_secret
        )
        if not good:
            return JSONResponse(
                {"error": "invalid_client", "error_description": "client credentials rejected"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="psp-emulator"'},
            )
        if form.get("grant_type") != "client_credentials":
            return JSONResponse(
                {"error": "unsupported_grant_type", "error_description": "client_credentials only"},
                status_code=400,
            )
        asked = frozenset(str(form.get("scope", "")).split())
        if asked - ALL_SCOPES:
            return JSONResponse(
                {
                    "error": "invalid_scope",
                    "error_description": " ".join(sorted(asked - ALL_SCOPES)),
                },
                status_code=400,
            )
        scopes = asked or ALL_SCOPES
        access = secrets.token_urlsafe(32)
        emulator.tokens[access] = Token(
            scopes, emulator.clock() + timedelta(seconds=emulator.token_ttl)
        )
        emulator.tokens_issued += 1
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": emulator.token_ttl,
                "scope": " ".join(sorted(scopes)),
            }
        )

    def scope(name: str) -> Any:
        def check(request: Request) -> None:
            header = request.headers.get("authorization", "")
            if not header.lower().startswith("bearer "):
                raise Problem(401, "AcessoNegado", "Não autenticado", "falta o token de acesso")
            found = emulator.tokens.get(header[7:].strip())
            if found is None or found.expires_at <= emulator.clock():
                raise Problem(401, "AcessoNegado", "Não autenticado", "token inválido ou expirado")
            if name not in found.scopes:
                raise Problem(
                    403, "AcessoNegado", "Acesso negado", f"o token não tem o escopo {name}"
                )

        return Depends(check)

    @app.put(prefix + "/cob/{txid}", status_code=201, dependencies=[scope("cob.write")])
    async def put_cob(txid: str, request: Request) -> Response:
        cob = ledger.put_cob(txid, await _json(request))
        return JSONResponse(cob.body(), status_code=201)

    @app.get(prefix + "/cob/{txid}", dependencies=[scope("cob.read")])
    async def get_cob(txid: str) -> Response:
        cob = ledger.get_cob(txid)
        body = cob.body()
        if cob.pix:
            body["pix"] = [ledger.pix[e].body() for e in cob.pix]
        return JSONResponse(body)

    @app.patch(prefix + "/cob/{txid}", dependencies=[scope("cob.write")])
    async def patch_cob(txid: str, request: Request) -> Response:
        return JSONResponse(ledger.patch_cob(txid, await _json(request)).body())

    @app.get(prefix + "/pix", dependencies=[scope("pix.read")])
    async def list_pix(request: Request) -> Response:
        query = request.query_params
        inicio = _time(query.get("inicio"), "inicio")
        fim = _time(query.get("fim"), "fim")
        txid = query.get("txid")
        if txid is not None and ANY_TXID.fullmatch(txid) is None:
            raise invalid("PixConsultaInvalida", "txid inválido", "txid", txid)
        page = _int(query.get("paginacao.paginaAtual"), "paginacao.paginaAtual", 0, 0, 10**9)
        per_page = _int(
            query.get("paginacao.itensPorPagina"), "paginacao.itensPorPagina", 100, 1, 1000
        )
        found = ledger.list_pix(inicio, fim, txid=txid)
        pages = max(1, -(-len(found) // per_page))
        chosen = found[page * per_page : (page + 1) * per_page]
        parametros: dict[str, Any] = {
            "inicio": iso(inicio),
            "fim": iso(fim),
            "paginacao": {
                "paginaAtual": page,
                "itensPorPagina": per_page,
                "quantidadeDePaginas": pages,
                "quantidadeTotalDeItens": len(found),
            },
        }
        if txid is not None:
            parametros["txid"] = txid
        return JSONResponse({"parametros": parametros, "pix": [p.body() for p in chosen]})

    @app.get(prefix + "/pix/{e2eid}", dependencies=[scope("pix.read")])
    async def get_pix(e2eid: str) -> Response:
        if E2E.fullmatch(e2eid) is None:
            raise invalid("PixConsultaInvalida", "e2eid inválido", "e2eid", e2eid)
        return JSONResponse(ledger.get_pix(e2eid).body())

    @app.put(
        prefix + "/pix/{e2eid}/devolucao/{dev_id}",
        status_code=201,
        dependencies=[scope("pix.write")],
    )
    async def put_devolucao(e2eid: str, dev_id: str, request: Request) -> Response:
        devolucao, new = ledger.put_devolucao(e2eid, dev_id, await _json(request))
        if new:
            success = not emulator.knobs.refund_fail

            async def settle() -> None:
                await asyncio.sleep(emulator.knobs.refund_seconds)
                ledger.settle_devolucao(e2eid, dev_id, success=success)

            task = asyncio.create_task(settle())
            emulator.settle_tasks.add(task)
            task.add_done_callback(emulator.settle_tasks.discard)
        return JSONResponse(devolucao.body(), status_code=201)

    @app.get(prefix + "/pix/{e2eid}/devolucao/{dev_id}", dependencies=[scope("pix.read")])
    async def get_devolucao(e2eid: str, dev_id: str) -> Response:
        return JSONResponse(ledger.get_devolucao(e2eid, dev_id).body())

    @app.put(prefix + "/webhook/{chave}", dependencies=[scope("webhook.write")])
    async def put_webhook(chave: str, request: Request) -> Response:
        body = await _json(request)
        ledger.put_webhook(chave, body.get("webhookUrl"))
        return Response(status_code=200)

    @app.get(prefix + "/webhook/{chave}", dependencies=[scope("webhook.read")])
    async def get_webhook(chave: str) -> Response:
        webhook = ledger.get_webhook(chave)
        return JSONResponse(
            {
                "webhookUrl": webhook.url,
                "chave": webhook.chave,
                "criacao": iso(webhook.criacao),
            }
        )

    @app.delete(prefix + "/webhook/{chave}", status_code=204, dependencies=[scope("webhook.write")])
    async def delete_webhook(chave: str) -> Response:
        ledger.delete_webhook(chave)
        return Response(status_code=204)

    # -- controls for tests and demos (mTLS like the rest; no token) ---------------------

    @app.post("/_emulator/knobs")
    async def knobs(request: Request) -> Response:
        body = await _json(request)
        for name, value in body.items():
            if not hasattr(emulator.knobs, name):
                raise Problem(400, "RequisicaoInvalida", "Knob desconhecido", name)
            setattr(emulator.knobs, name, type(getattr(emulator.knobs, name))(value))
        return JSONResponse(emulator.knobs.__dict__)

    @app.post("/_emulator/expire-tokens")
    async def expire_tokens() -> Response:
        count = len(emulator.tokens)
        emulator.tokens.clear()
        return JSONResponse({"expired": count})

    @app.get("/_emulator/stats")
    async def stats() -> Response:
        deliveries = emulator.deliverer.stats.__dict__ if emulator.deliverer else {}
        return JSONResponse(
            {
                "tokens_issued": emulator.tokens_issued,
                "cobs": len(ledger.cobs),
                "pix": len(ledger.pix),
                "deliveries": deliveries,
            }
        )

    return app


def public_app(emulator: Emulator) -> FastAPI:
    app = FastAPI(title="pixlive psp-emulator (locations, payer)", openapi_url=None, docs_url=None)
    _install_errors(app)
    ledger = emulator.ledger

    @app.get("/qr/v2/{token}")
    async def location(token: str) -> Response:
        payload = ledger.location_payload(token)
        signed = jws.sign(payload, emulator.signing_key, emulator.signing_cert)
        return Response(signed, media_type="application/jose")

    @app.post("/_emulator/pay")
    async def pay(request: Request) -> Response:
        body = await _json(request)
        valor_text = body.get("valor")
        if not isinstance(valor_text, str) or re.fullmatch(r"\d{1,10}\.\d{2}", valor_text) is None:
            raise invalid(
                "RequisicaoInvalida", "valor deve ter duas casas decimais", "valor", valor_text
            )
        if body.get("chave") not in (None, ledger.chave):
            raise Problem(404, "NaoEncontrado", "Chave não encontrada", "a chave não é deste PSP")
        txid = body.get("txid")
        if txid is not None and (not isinstance(txid, str) or ANY_TXID.fullmatch(txid) is None):
            raise invalid("RequisicaoInvalida", "txid inválido", "txid", txid)
        pix: Pix = ledger.receive(
            valor=int(valor_text.replace(".", "")), txid=txid, info=body.get("infoPagador")
        )
        return JSONResponse(pix.body(), status_code=201)

    return app
