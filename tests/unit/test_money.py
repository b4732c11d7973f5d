"""Amounts as integer centavos: what is accepted, what is refused, and how they print."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pixlive.domain.errors import DomainError, InvalidAmount
from pixlive.domain.money import MAX_CENTS, MIN_CENTS, format_amount, format_brl, parse_amount

cents = st.integers(min_value=MIN_CENTS, max_value=MAX_CENTS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.34", 1234),
        ("0.01", 1),
        ("0.1", 10),
        ("12.3", 1230),
        ("12", 1200),
        ("9999999999.99", 999_999_999_999),
        (12, 1200),
        (12.5, 1250),
        (0.1, 10),
        (12.34, 1234),
        (9999999999.99, 999_999_999_999),
    ],
)
def test_accepted_amounts(value: object, expected: int) -> None:
    assert parse_amount(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "0.00",
        "0",
        0,
        0.0,
        -0.0,
        "-1",
        -1,
        -0.01,
        "1.234",
        12.345,
        "1e3",
        1e16,
        1e-5,
        float("nan"),
        float("inf"),
        float("-inf"),
        True,
        False,
        "abc",
        "",
        "10000000000.00",
        10_000_000_000,
        None,
        " 12.34",
        "12.34 ",
        "12.34\n",
        "+12.34",
        "012.34",
        "12.",
        ".5",
        "12,34",
        "١٢.٣٤",  # Arabic-Indic digits, which Decimal would read
        b"12.34",
        [12],
        {"value": "12.34"},
    ],
)
def test_refused_amounts(value: object) -> None:
    with pytest.raises(InvalidAmount) as caught:
        parse_amount(value)
    # The entry points map DomainError to a 4xx; anything else would be a 500.
    assert isinstance(caught.value, DomainError)
    assert caught.value.code == "invalid_value"


def test_a_huge_int_is_refused_as_an_amount_not_a_crash() -> None:
    # str() of an int this long raises a plain ValueError, which would surface as a 500.
    with pytest.raises(InvalidAmount):
        parse_amount(10**5000)


@pytest.mark.parametrize("value", ["12.34", "0.01", "9999999999.99", "0.10"])
def test_strict_accepts_exactly_two_decimals(value: str) -> None:
    assert parse_amount(value, strict=True) == parse_amount(value)


@pytest.mark.parametrize("value", ["12", "12.3", "12.345", 12, 12.5, "0.00", "12.34\n"])
def test_strict_refuses_anything_else(value: object) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(value, strict=True)


@pytest.mark.parametrize(
    ("value", "text", "brl"),
    [
        (1, "0.01", "R$ 0,01"),
        (5, "0.05", "R$ 0,05"),
        (10, "0.10", "R$ 0,10"),
        (100, "1.00", "R$ 1,00"),
        (1234, "12.34", "R$ 12,34"),
        (123456, "1234.56", "R$ 1.234,56"),
        (100_000_000, "1000000.00", "R$ 1.000.000,00"),
        (999_999_999_999, "9999999999.99", "R$ 9.999.999.999,99"),
    ],
)
def test_formats(value: int, text: str, brl: str) -> None:
    assert format_amount(value) == text
    assert format_brl(value) == brl


@given(value=cents)
@example(value=MIN_CENTS)
@example(value=MAX_CENTS)
def test_format_and_parse_round_trip(value: int) -> None:
    text = format_amount(value)
    assert parse_amount(text) == value
    assert parse_amount(text, strict=True) == value
    assert format_amount(parse_amount(format_amount(value))) == text


@given(value=cents)
def test_a_json_float_reads_as_its_shortest_decimal(value: int) -> None:
    # A JSON number like 12.34 arrives as the float nearest to it; it must not become 1233.
    assert parse_amount(value / 100) == value


@given(value=cents)
def test_brl_has_the_same_digits_as_the_plain_text(value: int) -> None:
    brl = format_brl(value)
    assert brl.startswith("R$ ")
    reais, _, centavos = brl[3:].partition(",")
    assert len(centavos) == 2
    groups = reais.split(".")
    assert all(len(g) == 3 for g in groups[1:]) and 1 <= len(groups[0]) <= 3
    assert "".join(groups) + "." + centavos == format_amount(value)
