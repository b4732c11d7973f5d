"""What the emulated PSP knows, in memory: cobs, locations, Pix received, devoluções,
webhooks, tokens. Every rule of the API Pix that the emulator enforces lives here, so the
HTTP layer only translates."""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pixlive.domain.money import format_amount

TXID = re.compile(r"[a-zA-Z0-9]{26,35}")
ANY_TXID = re.compile(r"[a-zA-Z0-9]{1,35}")
DEVOLUCAO_ID = re.compile(r"[a-zA-Z0-9]{1,35}")
E2E = re.compile(r"[a-zA-Z0-9]{32}")
_ALNUM = string.ascii_letters + string.digits
ISPB = "99999999"  # the emulator's own (fictitious) ISPB in the ids it mints


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Problem(Exception):
    """An RFC 7807 answer of the API Pix: `kind` is the last segment of its `type`."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        violacoes: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.violacoes = violacoes or []

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://pix.bcb.gov.br/api/v2/error/{self.kind}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.violacoes:
            body["violacoes"] = self.violacoes
        return body


def invalid(kind: str, detail: str, prop: str, value: object = "") -> Problem:
    return Problem(
        400,
        kind,
        "Operação inválida" if kind.endswith("OperacaoInvalida") else "Requisição inválida",
        detail,
        [{"razao": detail, "propriedade": prop, "valor": str(value)}],
    )


class CobStatus(StrEnum):
    ATIVA = "ATIVA"
    CONCLUIDA = "CONCLUIDA"
    REMOVIDA_PELO_USUARIO_RECEBEDOR = "REMOVIDA_PELO_USUARIO_RECEBEDOR"
    REMOVIDA_PELO_PSP = "REMOVIDA_PELO_PSP"


TRANSITIONS: dict[CobStatus, frozenset[CobStatus]] = {
    CobStatus.ATIVA: frozenset(
        {
            CobStatus.CONCLUIDA,
            CobStatus.REMOVIDA_PELO_USUARIO_RECEBEDOR,
            CobStatus.REMOVIDA_PELO_PSP,
        }
    ),
    CobStatus.CONCLUIDA: frozenset(),
    CobStatus.REMOVIDA_PELO_USUARIO_RECEBEDOR: frozenset(),
    CobStatus.REMOVIDA_PELO_PSP: frozenset(),
}


@dataclass
class Cob:
    txid: str
    chave: str
    valor: int
    expiracao: int
    criacao: datetime
    loc_id: int
    location: str
    token: str
    solicitacao: str | None = None
    devedor: dict[str, str] | None = None
    info: list[dict[str, str]] = field(default_factory=list)
    revisao: int = 0
    status: CobStatus = CobStatus.ATIVA
    pix: list[str] = field(default_factory=list)
    brcode: str = ""

    def expired(self, now: datetime) -> bool:
        return now >= self.criacao + timedelta(seconds=self.expiracao)

    def move(self, to: CobStatus) -> None:
        if to not in TRANSITIONS[self.status]:
            raise invalid(
                "CobOperacaoInvalida",
                f"a cobrança está {self.status} e não pode passar a {to}",
                "cob.status",
                to,
            )
        self.status = to
        self.revisao += 1

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "calendario": {"criacao": iso(self.criacao), "expiracao": self.expiracao},
            "txid": self.txid,
            "revisao": self.revisao,
            "loc": {
                "id": self.loc_id,
                "txid": self.txid,  # CobGerada requires it in `loc`, though its examples omit it
                "location": self.location,
                "tipoCob": "cob",
                "criacao": iso(self.criacao),
            },
            "location": self.location,
            "status": str(self.status),
            "valor": {"original": format_amount(self.valor)},
            "chave": self.chave,
            "pixCopiaECola": self.brcode,
        }
        if self.devedor:
            body["devedor"] = dict(self.devedor)
        if self.solicitacao:
            body["solicitacaoPagador"] = self.solicitacao
        if self.info:
            body["infoAdicionais"] = list(self.info)
        return body


class DevolucaoStatus(StrEnum):
    EM_PROCESSAMENTO = "EM_PROCESSAMENTO"
    DEVOLVIDO = "DEVOLVIDO"
    NAO_REALIZADO = "NAO_REALIZADO"


@dataclass
class Devolucao:
    id: str
    rtr_id: str
    valor: int
    solicitacao: datetime
    descricao: str | None = None
    natureza: str = "ORIGINAL"
    status: DevolucaoStatus = DevolucaoStatus.EM_PROCESSAMENTO
    liquidacao: datetime | None = None
    motivo: str | None = None

    def body(self) -> dict[str, Any]:
        horario = {"solicitacao": iso(self.solicitacao)}
        if self.liquidacao is not None:
            horario["liquidacao"] = iso(self.liquidacao)
        body: dict[str, Any] = {
            "id": self.id,
            "rtrId": self.rtr_id,
            "valor": format_amount(self.valor),
            "natureza": self.natureza,
            "horario": horario,
            "status": str(self.status),
        }
        if self.descricao:
            body["descricao"] = self.descricao
        if self.motivo:
            body["motivo"] = self.motivo
        return body


@dataclass
class Pix:
    end_to_end_id: str
    valor: int
    chave: str
    horario: datetime
    txid: str | None = None
    info_pagador: str | None = None
    devolucoes: dict[str, Devolucao] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "endToEndId": self.end_to_end_id,
            "valor": format_amount(self.valor),
            "chave": self.chave,
            "horario": iso(self.horario),
        }
        if self.txid:
            body["txid"] = self.txid
        if self.info_pagador:
            body["infoPagador"] = self.info_pagador
        if self.devolucoes:
            body["devolucoes"] = [d.body() for d in self.devolucoes.values()]
        return body

    def refunded(self) -> int:
        return sum(
            d.valor
            for d in self.devolucoes.values()
            if d.status is not DevolucaoStatus.NAO_REALIZADO
        )


@dataclass
class Webhook:
    chave: str
    url: str
    criacao: datetime


def mint_id(prefix: str, now: datetime) -> str:
    """A 32-char id as the SPI mints them: prefix, ISPB, yyyyMMddHHmm, 11 random chars."""
    tail = "".join(secrets.choice(_ALNUM) for _ in range(11))
    return prefix + ISPB + now.strftime("%Y%m%d%H%M") + tail


class Ledger:
    """The PSP's books. `notify` is called with each Pix (or each Pix whose devolução
    reached a final status) that a webhook must report."""

    def __init__(
        self,
        *,
        chave: str,
        name: str,
        city: str,
        location_base: str,
        brcode: Callable[[Cob], str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.chave = chave
        self.name = name
        self.city = city
        self.location_base = location_base
        self._brcode = brcode
        self.clock = clock
        self.cobs: dict[str, Cob] = {}
        self.by_token: dict[str, Cob] = {}
        self.pix: dict[str, Pix] = {}
        self.webhooks: dict[str, Webhook] = {}
        self.notify: Callable[[Pix], None] = lambda pix: None
        self._next_loc = 1

    # -- cob -------------------------------------------------------------------------

    def _status_now(self, cob: Cob) -> None:
        # The API Pix leaves expiry to the PSP: past `expiracao` an ATIVA cob can no
        # longer be paid, and the PSP removes it.
        if cob.status is CobStatus.ATIVA and cob.expired(self.clock()):
            cob.move(CobStatus.REMOVIDA_PELO_PSP)

    def put_cob(self, txid: str, body: dict[str, Any]) -> Cob:
        if TXID.fullmatch(txid) is None:
            raise invalid(
                "CobOperacaoInvalida",
                "o txid deve ter de 26 a 35 caracteres [a-zA-Z0-9]",
                "txid",
                txid,
            )
        if txid in self.cobs:
            raise invalid(
                "CobOperacaoInvalida", "já existe uma cobrança com este txid", "txid", txid
            )
        valor, expiracao, chave = self._validated(body)
        now = self.clock()
        token = secrets.token_hex(16)
        cob = Cob(
            txid=txid,
            chave=chave,
            valor=valor,
            expiracao=expiracao,
            criacao=now,
            loc_id=self._next_loc,
            location=f"{self.location_base}/qr/v2/{token}",
            token=token,
            solicitacao=body.get("solicitacaoPagador"),
            devedor=body.get("devedor"),
            info=list(body.get("infoAdicionais") or []),
        )
        self._next_loc += 1
        cob.brcode = self._brcode(cob)
        self.cobs[txid] = cob
        self.by_token[token] = cob
        return cob

    def _validated(self, body: dict[str, Any]) -> tuple[int, int, str]:
        valor_text = (body.get("valor") or {}).get("original")
        if not isinstance(valor_text, str) or re.fullmatch(r"\d{1,10}\.\d{2}", valor_text) is None:
            raise invalid(
                "CobOperacaoInvalida",
                "valor.original deve ser texto com duas casas decimais",
                "valor.original",
                valor_text,
            )
        valor = int(valor_text.replace(".", ""))
        if valor <= 0:
            raise invalid(
                "CobOperacaoInvalida",
                "valor.original deve ser positivo",
                "valor.original",
                valor_text,
            )
        expiracao = (body.get("calendario") or {}).get("expiracao", 86400)
        if isinstance(expiracao, bool) or not isinstance(expiracao, int) or expiracao <= 0:
            raise invalid(
                "CobOperacaoInvalida",
                "calendario.expiracao deve ser um inteiro positivo",
                "calendario.expiracao",
                expiracao,
            )
        chave = body.get("chave")
        if chave != self.chave:
            raise invalid(
                "CobOperacaoInvalida",
                "a chave não pertence a este usuário recebedor",
                "chave",
                chave,
            )
        solicitacao = body.get("solicitacaoPagador")
        if solicitacao is not None and (not isinstance(solicitacao, str) or len(solicitacao) > 140):
            raise invalid(
                "CobOperacaoInvalida",
                "solicitacaoPagador tem no máximo 140 caracteres",
                "solicitacaoPagador",
            )
        devedor = body.get("devedor")
        if devedor is not None:
            if not isinstance(devedor, dict) or ("cpf" in devedor) == ("cnpj" in devedor):
                raise invalid(
                    "CobOperacaoInvalida",
                    "devedor leva cpf ou cnpj, um dos dois, e nome",
                    "devedor",
                )
            if not isinstance(devedor.get("nome"), str):
                raise invalid("CobOperacaoInvalida", "devedor.nome é obrigatório", "devedor.nome")
        return valor, expiracao, chave

    def get_cob(self, txid: str) -> Cob:
        cob = self.cobs.get(txid)
        if cob is None:
            raise Problem(
                404, "CobNaoEncontrado", "Cobrança não encontrada", "não há cobrança com este txid"
            )
        self._status_now(cob)
        return cob

    def patch_cob(self, txid: str, body: dict[str, Any]) -> Cob:
        cob = self.get_cob(txid)
        status = body.get("status")
        if status is not None:
            if status != CobStatus.REMOVIDA_PELO_USUARIO_RECEBEDOR:
                raise invalid(
                    "CobOperacaoInvalida",
                    "status só pode ser alterado para REMOVIDA_PELO_USUARIO_RECEBEDOR",
                    "status",
                    status,
                )
            cob.move(CobStatus.REMOVIDA_PELO_USUARIO_RECEBEDOR)
            return cob
        if cob.status is not CobStatus.ATIVA:
            raise invalid(
                "CobOperacaoInvalida", f"a cobrança está {cob.status}", "status", cob.status
            )
        changed = False
        if "valor" in body:
            valor_text = (body.get("valor") or {}).get("original")
            if (
                not isinstance(valor_text, str)
                or re.fullmatch(r"\d{1,10}\.\d{2}", valor_text) is None
            ):
                raise invalid(
                    "CobOperacaoInvalida", "valor.original inválido", "valor.original", valor_text
                )
            cob.valor = int(valor_text.replace(".", ""))
            changed = True
        if "solicitacaoPagador" in body:
            cob.solicitacao = body["solicitacaoPagador"]
            changed = True
        if changed:
            cob.revisao += 1
            cob.brcode = self._brcode(cob)
        return cob

    def location_payload(self, token: str) -> dict[str, Any]:
        cob = self.by_token.get(token)
        if cob is None:
            raise Problem(
                404,
                "CobPayloadNaoEncontrado",
                "Payload não encontrado",
                "não há cobrança nesta location",
            )
        self._status_now(cob)
        if cob.status is not CobStatus.ATIVA:
            raise Problem(
                404,
                "CobPayloadNaoEncontrado",
                "Payload não encontrado",
                f"a cobrança está {cob.status}",
            )
        body = cob.body()
        for name in ("loc", "location", "pixCopiaECola"):
            body.pop(name, None)
        body["calendario"]["apresentacao"] = iso(self.clock())
        return body

    # -- Pix -------------------------------------------------------------------------

    def receive(self, *, valor: int, txid: str | None, info: str | None = None) -> Pix:
        """A Pix arrives from a payer's PSP. A cob's txid marks the cob CONCLUIDA when the
        value is its value; any other Pix is still money received, kept and reported."""
        now = self.clock()
        cob = self.cobs.get(txid) if txid else None
        if cob is not None:
            self._status_now(cob)
            if cob.status is not CobStatus.ATIVA:
                raise Problem(
                    400,
                    "CobOperacaoInvalida",
                    "Cobrança não pode ser paga",
                    f"a cobrança está {cob.status}",
                )
            if valor != cob.valor:
                raise Problem(
                    400, "CobOperacaoInvalida", "Valor diferente", "o valor difere do da cobrança"
                )
        pix = Pix(
            end_to_end_id=mint_id("E", now),
            valor=valor,
            chave=self.chave,
            horario=now,
            txid=txid,
            info_pagador=info,
        )
        self.pix[pix.end_to_end_id] = pix
        if cob is not None:
            cob.move(CobStatus.CONCLUIDA)
            cob.pix.append(pix.end_to_end_id)
        if txid:
            # Only Pix with a txid are notified (PUT /webhook/{chave} in the spec).
            self.notify(pix)
        return pix

    def get_pix(self, e2eid: str) -> Pix:
        pix = self.pix.get(e2eid)
        if pix is None:
            raise Problem(
                404, "PixNaoEncontrado", "Pix não encontrado", "não há Pix com este e2eid"
            )
        return pix

    def list_pix(self, inicio: datetime, fim: datetime, *, txid: str | None = None) -> list[Pix]:
        if fim < inicio:
            raise invalid("PixConsultaInvalida", "fim é anterior a inicio", "fim", iso(fim))
        found = [
            p
            for p in self.pix.values()
            if inicio <= p.horario <= fim and (txid is None or p.txid == txid)
        ]
        found.sort(key=lambda p: (p.horario, p.end_to_end_id))
        return found

    # -- devolução -------------------------------------------------------------------

    def put_devolucao(
        self, e2eid: str, dev_id: str, body: dict[str, Any]
    ) -> tuple[Devolucao, bool]:
        """The devolução and whether it is new; the same id again answers the same one."""
        if DEVOLUCAO_ID.fullmatch(dev_id) is None:
            raise invalid("PixDevolucaoInvalida", "id inválido", "id", dev_id)
        pix = self.get_pix(e2eid)
        valor_text = body.get("valor")
        if not isinstance(valor_text, str) or re.fullmatch(r"\d{1,10}\.\d{2}", valor_text) is None:
            raise invalid(
                "PixDevolucaoInvalida", "valor deve ter duas casas decimais", "valor", valor_text
            )
        valor = int(valor_text.replace(".", ""))
        seen = pix.devolucoes.get(dev_id)
        if seen is not None:
            if seen.valor != valor:
                raise invalid(
                    "PixDevolucaoInvalida", "este id já foi usado com outro valor", "id", dev_id
                )
            return seen, False
        if valor <= 0 or pix.refunded() + valor > pix.valor:
            raise invalid(
                "PixDevolucaoInvalida",
                "a soma das devoluções excede o valor do Pix",
                "valor",
                valor_text,
            )
        now = self.clock()
        devolucao = Devolucao(
            id=dev_id,
            rtr_id=mint_id("D", now),
            valor=valor,
            solicitacao=now,
            descricao=body.get("descricao"),
        )
        pix.devolucoes[dev_id] = devolucao
        return devolucao, True

    def settle_devolucao(self, e2eid: str, dev_id: str, *, success: bool) -> None:
        pix = self.get_pix(e2eid)
        devolucao = pix.devolucoes[dev_id]
        if devolucao.status is not DevolucaoStatus.EM_PROCESSAMENTO:
            return
        devolucao.status = DevolucaoStatus.DEVOLVIDO if success else DevolucaoStatus.NAO_REALIZADO
        devolucao.liquidacao = self.clock() if success else None
        if not success:
            devolucao.motivo = "Devolução recusada pelo PSP do pagador (emulador)"
        if pix.txid:
            self.notify(pix)

    def get_devolucao(self, e2eid: str, dev_id: str) -> Devolucao:
        devolucao = self.get_pix(e2eid).devolucoes.get(dev_id)
        if devolucao is None:
            raise Problem(
                404,
                "PixDevolucaoNaoEncontrada",
                "Devolução não encontrada",
                "não há devolução com este id",
            )
        return devolucao

    # -- webhook ---------------------------------------------------------------------

    def put_webhook(self, chave: str, url: object) -> Webhook:
        if chave != self.chave:
            raise Problem(
                404, "NaoEncontrado", "Chave não encontrada", "a chave não pertence a este usuário"
            )
        if not isinstance(url, str) or not url.startswith("https://"):
            raise invalid(
                "WebhookOperacaoInvalida", "webhookUrl deve ser uma URL https", "webhookUrl", url
            )
        webhook = Webhook(chave, url, self.clock())
        self.webhooks[chave] = webhook
        return webhook

    def get_webhook(self, chave: str) -> Webhook:
        webhook = self.webhooks.get(chave)
        if webhook is None:
            raise Problem(
                404,
                "WebhookNaoEncontrado",
                "Webhook não encontrado",
                "não há webhook para esta chave",
            )
        return webhook

    def delete_webhook(self, chave: str) -> None:
        self.get_webhook(chave)
        del self.webhooks[chave]
