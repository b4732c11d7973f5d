"""The PSP port: what the use cases ask of the merchant's bank (the API Pix), and the records
and errors that cross it. `PIXLIVE_PSP=none` has no PSP at all (static codes, webhook only);
`apipix` is adapters/apipix."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pixlive.domain.charge import Payer


class PspError(Exception):
    """The PSP could not do what was asked. `kind` names why, for metrics and logs."""

    kind = "error"

    def __init__(self, message: str, *, status: int | None = None, problem: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status  # the PSP's HTTP status, when it answered
        self.problem = problem  # the last segment of its RFC 7807 `type`


class PspUnavailable(PspError):
    """Down, unreachable, timing out or answering 5xx: worth retrying later."""

    kind = "unavailable"


class PspRefused(PspError):
    """The PSP answered and said no (4xx): retrying the same request will not help."""

    kind = "refused"


class PspNotFound(PspRefused):
    kind = "not_found"


@dataclass(frozen=True)
class CobRequest:
    txid: str
    value: int  # centavos
    expires_in: int  # seconds
    chave: str
    description: str | None = None
    payer: Payer | None = None


@dataclass(frozen=True)
class Cob:
    txid: str
    status: str  # ATIVA, CONCLUIDA, REMOVIDA_PELO_USUARIO_RECEBEDOR, REMOVIDA_PELO_PSP
    value: int
    chave: str
    pix_copia_e_cola: str
    location: str | None = None


@dataclass(frozen=True)
class PixReceived:
    """One Pix as `GET /pix` lists it."""

    end_to_end_id: str
    txid: str | None
    value: int
    horario: datetime
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PixPage:
    items: list[PixReceived]
    page: int
    pages: int


class Psp(Protocol):
    """The receiving PSP, reached through the API Pix."""

    profile: str

    async def create_cob(self, request: CobRequest) -> Cob:
        """`PUT /cob/{txid}`; a txid that already names the same charge answers that cob, so
        that a create retried after a failure ends with one cob."""
        ...

    async def get_cob(self, txid: str) -> Cob: ...

    async def cancel_cob(self, txid: str) -> Cob:
        """`PATCH /cob/{txid}` to REMOVIDA_PELO_USUARIO_RECEBEDOR; already removed is done."""
        ...

    async def list_pix(self, start: datetime, end: datetime, page: int) -> PixPage: ...

    async def put_webhook(self, chave: str, url: str) -> None: ...

    async def get_webhook(self, chave: str) -> str | None: ...

    async def delete_webhook(self, chave: str) -> None: ...

    async def close(self) -> None: ...
