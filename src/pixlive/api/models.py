"""Request and response models of the HTTP API, separate from the domain's classes."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pixlive.domain.charge import Charge, Status, iso
from pixlive.domain.documents import digits, is_valid_cnpj, is_valid_cpf
from pixlive.domain.errors import InvalidAmount
from pixlive.domain.money import format_amount, parse_amount

# Exactly two decimals, 0.01 to 9999999999.99: the API Pix's `valor`, without 0.00.
AMOUNT_PATTERN = r"^(0\.(0[1-9]|[1-9][0-9])|[1-9][0-9]{0,9}\.[0-9]{2})$"
AMOUNT_FORMAT = 'send value as a string with two decimals, e.g. "12.34"'

AMOUNT_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": AMOUNT_PATTERN,
    "examples": ["12.34"],
    "description": (
        'Amount in reais, a string with exactly two decimals and a dot: "12.34" is R$ 12,34. '
        "A JSON number is refused: 1234 would read as centavos to some and as reais to others."
    ),
}


def _amount_error(message: str) -> PydanticCustomError:
    # A custom error's message reaches the client as written, with no "Value error, " prefix.
    return PydanticCustomError("invalid_amount", message)


def wire_amount(value: object) -> int:
    """Centavos from the wire's text ("12.34"); a number, or text in another form, is
    refused with a message that shows the form. The domain's money stays integer centavos."""
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise _amount_error(f"a JSON number is not accepted: {AMOUNT_FORMAT}")
        raise _amount_error(AMOUNT_FORMAT)
    if "," in value:
        raise _amount_error('use a dot for the decimals, not a comma: "12.34", not "12,34"')
    if not re.fullmatch(AMOUNT_PATTERN, value):
        raise _amount_error(f"{AMOUNT_FORMAT}, from 0.01 to 9999999999.99")
    try:
        return parse_amount(value, strict=True)
    except InvalidAmount as exc:  # pragma: no cover - the pattern already guards this
        raise _amount_error(str(exc)) from exc


Amount = Annotated[int, BeforeValidator(wire_amount), WithJsonSchema(AMOUNT_SCHEMA)]


def _cpf(value: str) -> str:
    if not is_valid_cpf(value):
        raise ValueError("not a valid CPF (check digits do not match)")
    return digits(value)


def _cnpj(value: str) -> str:
    if not is_valid_cnpj(value):
        raise ValueError("not a valid CNPJ (check digits do not match)")
    return digits(value)


# PostgreSQL cannot store a NUL in text; refusing it here keeps both databases alike.
NO_NUL = r"^[^\x00]*$"

_METADATA_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,40}")


def _metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 20:
        raise ValueError("metadata holds at most 20 pairs")
    for key, item in value.items():
        # fullmatch: with match, "$" would also match before a final newline ("ab\n").
        if not _METADATA_KEY.fullmatch(key):
            raise ValueError("metadata keys are 1 to 40 characters of letters, digits, _ . -")
        if len(item) > 500:
            raise ValueError("metadata values are at most 500 characters")
    return value


class PayerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)] | None = None
    cpf: Annotated[str, Field(max_length=20), AfterValidator(_cpf)] | None = None
    cnpj: Annotated[str, Field(max_length=24), AfterValidator(_cnpj)] | None = None

    @model_validator(mode="after")
    def _one_document(self) -> PayerIn:
        if self.cpf and self.cnpj:
            raise ValueError("give either cpf or cnpj, not both")
        return self


def _return_url(value: str) -> str:
    # Where the page's "Voltar para a loja" leads: an absolute web address, nothing a link
    # could turn into script (javascript:) or a credential (user:pass@). HTTPS in
    # production is checked where the settings are known.
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("return_url must be an absolute http(s) URL")
    if parsed.username is not None or parsed.password is not None:
        raise ValueError("return_url must not carry a user name or password")
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ValueError("return_url must not contain spaces or control characters")
    return value


class ChargeCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "value": "12.34",
                    "description": "Pedido 42",
                    "expires_in": 1800,
                    "payer": {"name": "Fulano de Tal", "cpf": "529.982.247-25"},
                    "metadata": {"order_id": "42"},
                }
            ]
        },
    )

    value: Amount
    description: Annotated[str, Field(max_length=140, pattern=NO_NUL)] | None = None
    expires_in: Annotated[int, Field(ge=60, le=30 * 24 * 3600, strict=True)] = 1800
    payer: PayerIn | None = None
    metadata: Annotated[
        dict[str, Annotated[str, Field(max_length=500, pattern=NO_NUL)]], AfterValidator(_metadata)
    ] = Field(default_factory=dict)
    return_url: Annotated[str, Field(max_length=2000), AfterValidator(_return_url)] | None = None


class ChargeOut(BaseModel):
    """The public view of a charge: what anyone holding its id may see."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "k3Jd9QmZpX2aVb7NcR4tYw8Le",
                    "status": "ACTIVE",
                    "value": "12.34",
                    "description": "Pedido 42",
                    "created_at": "2026-11-28T01:00:00.000Z",
                    "expires_at": "2026-11-28T01:30:00.000Z",
                    "paid_at": None,
                    "end_to_end_id": None,
                    "pix_copia_e_cola": "00020101021226...6304ABCD",
                    "qr_code_url": "https://pay.example.com/payments/pix/k3Jd9QmZpX2aVb7NcR4tYw8Le/qrcode.svg",
                    "payment_url": "https://pay.example.com/payments/pix/k3Jd9QmZpX2aVb7NcR4tYw8Le",
                    "last_event_id": 41,
                }
            ]
        }
    )

    id: str
    status: Status
    value: str
    description: str | None
    created_at: str
    expires_at: str
    paid_at: str | None
    end_to_end_id: str | None
    pix_copia_e_cola: str
    qr_code_url: str
    payment_url: str
    last_event_id: int

    @classmethod
    def of(cls, charge: Charge, base_url: str) -> ChargeOut:
        payment_url = f"{base_url}/payments/pix/{charge.id}"
        return cls(
            id=charge.id,
            status=charge.status,
            value=format_amount(charge.value),
            description=charge.description,
            created_at=iso(charge.created_at),
            expires_at=iso(charge.expires_at),
            paid_at=iso(charge.paid_at) if charge.paid_at else None,
            end_to_end_id=charge.end_to_end_id,
            pix_copia_e_cola=charge.brcode,
            qr_code_url=payment_url + "/qrcode.svg",
            payment_url=payment_url,
            last_event_id=charge.last_event_id,
        )


class PayerOut(BaseModel):
    name: str | None = None
    cpf: str | None = None
    cnpj: str | None = None


class MerchantChargeOut(ChargeOut):
    """The merchant's view adds what the payer must not be shown to strangers."""

    payer: PayerOut | None
    metadata: dict[str, str]
    return_url: str | None = None

    @classmethod
    def of(cls, charge: Charge, base_url: str) -> MerchantChargeOut:
        public = ChargeOut.of(charge, base_url)
        payer = PayerOut(**vars(charge.payer)) if charge.payer else None
        return cls(
            **public.model_dump(),
            payer=payer,
            metadata=charge.metadata,
            return_url=charge.return_url,
        )


class ChargeList(BaseModel):
    data: list[MerchantChargeOut]
    next_cursor: str | None


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


# The PSP webhook ------------------------------------------------------------------------


class PixIn(BaseModel):
    """One Pix of the API Pix webhook body; fields we do not use are ignored, as the
    standard grows."""

    model_config = ConfigDict(extra="ignore")

    endToEndId: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{32}$")]
    txid: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,35}$")] | None = None
    valor: Annotated[str, Field(pattern=r"^[0-9]{1,10}\.[0-9]{2}$")]
    # RFC 3339, as the API Pix writes it; parsed (and its time zone required) by the webhook.
    horario: Annotated[
        str, Field(min_length=10, max_length=40, json_schema_extra={"format": "date-time"})
    ]
    infoPagador: Annotated[str, Field(max_length=140)] | None = None


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    pix: Annotated[list[PixIn], Field(min_length=1, max_length=1000)] | PixIn


class PixResult(BaseModel):
    endToEndId: str
    outcome: str
    payment_id: str | None = None


class WebhookOut(BaseModel):
    results: list[PixResult]


# What the live streams send (documented in the OpenAPI components; the transports write
# these shapes from the event rows directly) ----------------------------------------------

EventType = Literal[
    "payment.created", "payment.paid", "payment.expired", "payment.cancelled", "payment.mismatch"
]


class EventOut(BaseModel):
    """One event of a charge, the same on every transport (WebSocket text frame, SSE
    `data:`, long poll `events`, `GET /events`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "type": "payment.paid",
                    "payment_id": "k3Jd9QmZpX2aVb7NcR4tYw8Le",
                    "status": "PAID",
                    "at": "2026-11-28T01:02:03.456Z",
                    "data": {"value": "12.34", "end_to_end_id": "E" + "1" * 31},
                }
            ]
        }
    )

    id: int
    type: EventType
    payment_id: str
    status: Status
    at: Annotated[str, Field(json_schema_extra={"format": "date-time"})]
    data: Annotated[
        dict[str, Any],
        Field(
            description="payment.created: value, expires_at; payment.paid: value, "
            "end_to_end_id; payment.mismatch: end_to_end_id, received, expected, reason "
            "(value_differs or charge_final); the others: {}"
        ),
    ]


class SnapshotOut(BaseModel):
    """The first message of every stream: the charge as it is, and where its events stand."""

    type: Literal["snapshot"]
    last_event_id: int
    payment: ChargeOut
