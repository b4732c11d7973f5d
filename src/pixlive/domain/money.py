"""Money as integer centavos; text as the API Pix writes it ("12.34")."""

import re
from decimal import Decimal, InvalidOperation

from pixlive.domain.errors import InvalidAmount

MIN_CENTS = 1
MAX_CENTS = 999_999_999_999  # 9,999,999,999.99: the widest value field 54 can carry

_TEXT = re.compile(r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$")
_STRICT = re.compile(r"^(0|[1-9][0-9]{0,9})\.[0-9]{2}$")


def parse_amount(value: object, *, strict: bool = False) -> int:
    """Centavos from a string ("12.34") or a JSON number with at most two decimals.

    `strict` asks for exactly two decimals, as the API Pix's `valor` has.
    Booleans, NaN, infinities, negatives, exponents and a third decimal are refused.
    """
    if isinstance(value, bool):
        raise InvalidAmount('value must be a string like "12.34" or a number')
    if isinstance(value, int):
        # str() of an int beyond 4,300 digits raises a plain ValueError, which would escape
        # as a server error; such a value is out of range anyway.
        if not -MAX_CENTS <= value <= MAX_CENTS:
            raise InvalidAmount("value must lie between 0.01 and 9999999999.99")
        text = str(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidAmount("value must be a finite number")
        # repr gives the shortest text that round-trips, so 12.3 stays "12.3", not 12.2999...
        text = repr(value)
        if "e" in text or "E" in text:
            raise InvalidAmount("value is out of range")
    elif isinstance(value, str):
        text = value
    else:
        raise InvalidAmount('value must be a string like "12.34" or a number')
    pattern = _STRICT if strict else _TEXT
    # fullmatch, not match: "$" also matches before a trailing newline, so match would
    # take "12.34\n" for an amount.
    if not pattern.fullmatch(text):
        raise InvalidAmount(
            "value must have at most two decimals and lie between 0.01 and 9999999999.99"
            if not strict
            else "valor must be a decimal with exactly two digits after the point"
        )
    try:
        cents = int((Decimal(text) * 100).to_integral_exact())
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise InvalidAmount("value is not a number") from exc
    if not MIN_CENTS <= cents <= MAX_CENTS:
        raise InvalidAmount("value must lie between 0.01 and 9999999999.99")
    return cents


def format_amount(cents: int) -> str:
    """ "12.34" for 1234."""
    return f"{cents // 100}.{cents % 100:02d}"


def format_brl(cents: int) -> str:
    """ "R$ 1.234,56" for 123456, as a Brazilian reader expects."""
    reais = f"{cents // 100:,}".replace(",", ".")
    return f"R$ {reais},{cents % 100:02d}"
