"""Request and response models of the HTTP API, separate from the domain's classes."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from pixlive.domain.charge import Charge, Status, iso
from pixlive.domain.documents import digits, is_valid_cnpj, is_valid_cpf
from pixlive.domain.money import format_amount, parse_amount

AMOUNT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "string",
            "pattern": r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$",
            "examples": ["12.34"],
        },
        {"type": "number", "minimum": 0.01, "maximum": 9999999999.99, "multipleOf": 0.01},
    ],
    "description": 'Amount in reais: a string like "12.34" or a number with at most two decimals',
}

Amount = Annotated[int, BeforeValidator(parse_amount), WithJsonSchema(AMOUNT_SCHEMA)]


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

_METADATA_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,40}$")


def _metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 20:
        raise ValueError("metadata holds at most 20 pairs")
    for key, item in value.items():
        if not _METADATA_KEY.match(key):
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


class ChargeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Amount
    description: Annotated[str, Field(max_length=140, pattern=NO_NUL)] | None = None
    expires_in: Annotated[int, Field(ge=60, le=30 * 24 * 3600, strict=True)] = 1800
    payer: PayerIn | None = None
    metadata: Annotated[
        dict[str, Annotated[str, Field(max_length=500, pattern=NO_NUL)]], AfterValidator(_metadata)
    ] = Field(default_factory=dict)


class ChargeOut(BaseModel):
    """The public view of a charge: what anyone holding its id may see."""

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

    @classmethod
    def of(cls, charge: Charge, base_url: str) -> MerchantChargeOut:
        public = ChargeOut.of(charge, base_url)
        payer = PayerOut(**vars(charge.payer)) if charge.payer else None
        return cls(**public.model_dump(), payer=payer, metadata=charge.metadata)


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
