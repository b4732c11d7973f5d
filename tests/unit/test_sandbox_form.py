"""The sandbox home form reads money as Brazilians write it, and explains in Portuguese."""

from __future__ import annotations

import pytest

from pixlive.api.sandbox import FormError, parse_brl


@pytest.mark.parametrize(
    ("typed", "cents"),
    [
        ("1.234,56", 123456),
        ("1234,56", 123456),
        ("R$ 1.234,56", 123456),
        ("12.345.678,90", 1234567890),
        ("10,5", 1050),
        ("10,50", 1050),
        ("10.50", 1050),
        ("10", 1000),
        (" 0,01 ", 1),
        ("9.999.999.999,99", 999_999_999_999),
    ],
)
def test_reads_what_people_type(typed: str, cents: int) -> None:
    assert parse_brl(typed) == cents


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("abc", "Não entendemos o valor"),
        ("-1", "Não entendemos o valor"),
        ("1e3", "Não entendemos o valor"),
        ("10,999", "Não entendemos o valor"),
        ("10.00.00", "Não entendemos o valor"),
        ("1,234.56", "Não entendemos o valor"),
        ("0", "pelo menos R$ 0,01"),
        ("0,00", "pelo menos R$ 0,01"),
        ("10000000000,00", "O valor máximo"),
        # A thousand reais or a mistyped 1.23? Refused, with the way to say it.
        ("1.234", "por exemplo 1.234,00"),
    ],
)
def test_refuses_in_portuguese(typed: str, says: str) -> None:
    with pytest.raises(FormError) as refused:
        parse_brl(typed)
    assert says in str(refused.value)
