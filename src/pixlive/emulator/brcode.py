"""Dynamic BR Codes: the one a PSP returns for a `cob`, and a payer's reading of any code.

A dynamic code carries no txid of its own: field 26-25 holds the location URL (without
its scheme), 62-05 holds "***", and the payer's app learns the txid and the amount from
the signed payload at that location (Manual de Padrões para Iniciação do Pix, BCB).
"""

from __future__ import annotations

from dataclasses import dataclass

from pixlive.domain.brcode import GUI, crc16, fold_ascii, parse_tlv, verify_crc
from pixlive.domain.money import format_amount, parse_amount


def _field(tag: str, value: str) -> str:
    if len(value) > 99:
        raise ValueError(f"field {tag} is {len(value)} chars long; at most 99 fit")
    return f"{tag}{len(value):02d}{value}"


def dynamic_brcode(*, location: str, name: str, city: str, amount_cents: int | None) -> str:
    fields = [
        _field("00", "01"),
        _field("01", "12"),
        _field("26", _field("00", GUI) + _field("25", location)),
        _field("52", "0000"),
        _field("53", "986"),
    ]
    if amount_cents is not None:
        fields.append(_field("54", format_amount(amount_cents)))
    fields += [
        _field("58", "BR"),
        _field("59", fold_ascii(name, 25) or "Recebedor"),
        _field("60", fold_ascii(city, 15) or "Brasilia"),
        _field("62", _field("05", "***")),
    ]
    payload = "".join(fields) + "6304"
    return payload + crc16(payload.encode("ascii"))


@dataclass(frozen=True)
class ReadCode:
    """What a payer's app reads off a code, before any location is fetched."""

    key: str | None
    location: str | None
    txid: str | None
    amount: int | None
    name: str
    city: str

    @property
    def dynamic(self) -> bool:
        return self.location is not None


def read_brcode(code: str) -> ReadCode:
    """Raises ValueError for a code a bank app would refuse (bad CRC, malformed fields)."""
    code = code.strip()
    if not verify_crc(code):
        raise ValueError("the code's CRC (field 63) is wrong")
    top = parse_tlv(code[:-8])
    if top.get("00") != "01":
        raise ValueError("field 00 (payload format) must be 01")
    account = parse_tlv(top.get("26", ""))
    if account.get("00", "").lower() != GUI:
        raise ValueError("field 26 is not a Pix account (br.gov.bcb.pix)")
    extra = parse_tlv(top.get("62", "")) if "62" in top else {}
    txid = extra.get("05")
    return ReadCode(
        key=account.get("01"),
        location=account.get("25"),
        txid=None if txid in (None, "***") else txid,
        amount=parse_amount(top["54"]) if "54" in top else None,
        name=top.get("59", ""),
        city=top.get("60", ""),
    )
