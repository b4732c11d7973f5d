"""The BR Code (EMV QRCPS-MPM, "Pix Copia e Cola") that a payer's bank app reads.

Every field is `ID(2) LEN(2) VALUE`, and the code ends with a CRC-16 over all that precedes
it, so a single wrong length or byte makes banks reject the whole code: the builder refuses
anything it cannot encode exactly rather than emitting a code that will not scan.
"""

from __future__ import annotations

import binascii
import re
import unicodedata

from pixlive.domain.money import format_amount

GUI = "br.gov.bcb.pix"
MAX_KEY_LENGTH = 77  # 26 holds at most 99 chars: 18 for the GUI field, 4 for key's ID and LEN
MAX_AMOUNT_LENGTH = 13
MAX_NAME_LENGTH = 25
MAX_CITY_LENGTH = 15
STATIC_TXID = "***"

_TXID = re.compile(r"[A-Za-z0-9]{1,25}")
_PRINTABLE_ASCII = frozenset(chr(c) for c in range(0x20, 0x7F))
_CRC_FIELD = "6304"


def crc16(payload: bytes) -> str:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) as 4 uppercase hex digits."""
    return f"{binascii.crc_hqx(payload, 0xFFFF):04X}"


def fold_ascii(text: str, limit: int) -> str:
    """`text` as plain printable ASCII of at most `limit` chars: "São Paulo" → "Sao Paulo".

    The BR Code's name and city are ASCII only, and many bank apps mangle or refuse
    anything else, so accents are stripped and what has no ASCII form is dropped.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    # Whitespace becomes plain spaces before filtering, so a tab between words still
    # separates them once the (non-printable) tab itself would have been dropped.
    spaced = " ".join(bare.split())
    kept = "".join(ch for ch in spaced if ch in _PRINTABLE_ASCII)
    # Dropping a char can leave two spaces side by side ("a € b"), hence the second pass;
    # the cut can end on a space, hence the final strip.
    return " ".join(kept.split())[:limit].rstrip()


def _field(tag: str, value: str) -> str:
    if len(value) > 99:
        raise ValueError(f"field {tag} is {len(value)} chars long; at most 99 fit")
    return f"{tag}{len(value):02d}{value}"


def build_brcode(
    *,
    key: str,
    merchant_name: str,
    merchant_city: str,
    txid: str,
    amount_cents: int | None = None,
    one_time: bool = True,
) -> str:
    """The Pix Copia e Cola text for a charge of `amount_cents` to the Pix `key`.

    `amount_cents=None` leaves the amount for the payer to type in. `txid` is how the
    PSP's notification names the charge, so it must survive the trip unchanged: 1-25 chars
    of [A-Za-z0-9], or "***" for a code with no txid.
    """
    if not key or len(key) > MAX_KEY_LENGTH or not set(key) <= _PRINTABLE_ASCII:
        raise ValueError(f"the Pix key must be 1 to {MAX_KEY_LENGTH} printable ASCII chars")
    if txid != STATIC_TXID and _TXID.fullmatch(txid) is None:
        raise ValueError('txid must be 1 to 25 chars of [A-Za-z0-9], or "***"')
    name = fold_ascii(merchant_name, MAX_NAME_LENGTH)
    if not name:
        raise ValueError("the merchant name has no ASCII letters left once folded")
    city = fold_ascii(merchant_city, MAX_CITY_LENGTH)
    if not city:
        raise ValueError("the merchant city has no ASCII letters left once folded")

    fields = [_field("00", "01")]
    if one_time:
        # 12 tells the payer's app that the code must not be paid twice.
        fields.append(_field("01", "12"))
    fields.append(_field("26", _field("00", GUI) + _field("01", key)))
    fields.append(_field("52", "0000"))
    fields.append(_field("53", "986"))  # ISO 4217 for BRL
    if amount_cents is not None:
        # bool is an int, and True would otherwise become a charge of one centavo.
        if isinstance(amount_cents, bool) or amount_cents < 1:
            raise ValueError("the amount must be a positive number of centavos")
        amount = format_amount(amount_cents)
        if len(amount) > MAX_AMOUNT_LENGTH:
            raise ValueError(f"the amount {amount} is longer than {MAX_AMOUNT_LENGTH} chars")
        fields.append(_field("54", amount))
    fields.append(_field("58", "BR"))
    fields.append(_field("59", name))
    fields.append(_field("60", city))
    fields.append(_field("62", _field("05", txid)))

    # The CRC covers its own ID and LEN, so they are appended before computing it.
    payload = "".join(fields) + _CRC_FIELD
    return payload + crc16(payload.encode("ascii"))


def parse_tlv(code: str) -> dict[str, str]:
    """The top-level fields of a BR Code by ID; nested templates stay as their raw text.

    Raises ValueError when the text is not a well-formed sequence of fields.
    """
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(code):
        header = code[pos : pos + 4]
        # isdecimal() alone accepts non-ASCII digits such as "٣", which no length field has.
        if len(header) < 4 or not (header.isascii() and header.isdecimal()):
            raise ValueError(f"malformed field header {header!r} at offset {pos}")
        tag, length = header[:2], int(header[2:])
        value = code[pos + 4 : pos + 4 + length]
        if len(value) != length:
            raise ValueError(f"field {tag} claims {length} chars but {len(value)} remain")
        if tag in fields:
            raise ValueError(f"field {tag} appears twice")
        fields[tag] = value
        pos += 4 + length
    return fields


def verify_crc(code: str) -> bool:
    """Whether `code` ends with field 63 holding the right CRC of everything before it."""
    if len(code) < 8 or code[-8:-4] != _CRC_FIELD or not code.isascii():
        return False
    return crc16(code[:-4].encode("ascii")) == code[-4:]
