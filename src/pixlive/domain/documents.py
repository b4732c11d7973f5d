"""Brazilian taxpayer numbers: CPF (people, 11 digits) and CNPJ (companies, 14 digits).

Only the check digits are verified: that catches typos, not whether the number exists.
"""

from __future__ import annotations

CPF_LENGTH = 11
CNPJ_LENGTH = 14

_ASCII_DIGITS = frozenset("0123456789")
# The separators of the usual written forms, 123.456.789-09 and 12.345.678/0001-95.
_PUNCTUATION = frozenset(".-/ ")
_CNPJ_WEIGHTS = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)


def digits(text: str) -> str:
    """Only the ASCII digits of `text`: "123.456.789-09" → "12345678909"."""
    # str.isdigit() would also keep "٣" or "²", which no document number contains.
    return "".join(ch for ch in text if ch in _ASCII_DIGITS)


def _plain_digits(text: str, length: int) -> list[int] | None:
    """The digits of a document number written with the usual punctuation, or None.

    Anything other than digits and separators makes the text invalid rather than being
    dropped, so that "abc52998224725" is not taken for a CPF.
    """
    if not set(text) <= _ASCII_DIGITS | _PUNCTUATION:
        return None
    numbers = [int(ch) for ch in digits(text)]
    if len(numbers) != length:
        return None
    # 000.000.000-00, 111.111.111-11 and so on pass the check digit arithmetic but are
    # placeholders that the Receita Federal never issues.
    if len(set(numbers)) == 1:
        return None
    return numbers


def _cpf_check_digit(numbers: list[int]) -> int:
    # Weights run from len+1 down to 2; a remainder of 10 counts as 0.
    total = sum(n * w for n, w in zip(numbers, range(len(numbers) + 1, 1, -1), strict=True))
    return total * 10 % 11 % 10


def is_valid_cpf(text: str) -> bool:
    numbers = _plain_digits(text, CPF_LENGTH)
    if numbers is None:
        return False
    first = _cpf_check_digit(numbers[:9])
    second = _cpf_check_digit([*numbers[:9], first])
    return numbers[9:] == [first, second]


def _cnpj_check_digit(numbers: list[int]) -> int:
    # The weights are 2..9 cycling from the right, hence the tail of the longer table.
    weights = _CNPJ_WEIGHTS[-len(numbers) :]
    remainder = sum(n * w for n, w in zip(numbers, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder


def is_valid_cnpj(text: str) -> bool:
    numbers = _plain_digits(text, CNPJ_LENGTH)
    if numbers is None:
        return False
    first = _cnpj_check_digit(numbers[:12])
    second = _cnpj_check_digit([*numbers[:12], first])
    return numbers[12:] == [first, second]
