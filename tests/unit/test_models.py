"""The request models at the edge: money as text with two decimals, metadata keys."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pixlive.api.models import AMOUNT_PATTERN, ChargeCreate
from pixlive.domain.money import MAX_CENTS, MIN_CENTS, format_amount


def refusal(body: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        ChargeCreate.model_validate(body)
    (error,) = caught.value.errors()
    return str(error["msg"])


@given(st.integers(min_value=MIN_CENTS, max_value=MAX_CENTS))
def test_every_amount_in_range_travels_as_its_text(cents: int) -> None:
    text = format_amount(cents)
    assert ChargeCreate.model_validate({"value": text}).value == cents
    # The schema's pattern (what clients and fuzzers read) says the same as the parser;
    # fullmatch, as Python's "$" also matches before a final newline and JSON Schema's not.
    assert re.fullmatch(AMOUNT_PATTERN, text)


@given(st.integers(min_value=-(10**40), max_value=10**40) | st.floats())
def test_a_json_number_is_never_money(value: int | float) -> None:
    assert 'send value as a string with two decimals, e.g. "12.34"' in refusal({"value": value})


@pytest.mark.parametrize("text", ["12,34", "1.234,56", "0,01"])
def test_a_comma_is_told_to_be_a_dot(text: str) -> None:
    message = refusal({"value": text})
    assert "dot" in message and '"12.34"' in message


@pytest.mark.parametrize(
    "text",
    [
        "12",
        "12.3",
        "12.",
        ".34",
        "12.345",
        "0.00",
        "012.34",
        "+12.34",
        "-1.00",
        " 12.34",
        "12.34\n",
        "1e3",
        "NaN",
        "10000000000.00",
        "١٢.٣٤",
        "",
    ],
)
def test_other_text_is_refused_with_the_format(text: str) -> None:
    assert not re.fullmatch(AMOUNT_PATTERN, text)
    assert '"12.34"' in refusal({"value": text})


@given(st.text(max_size=60))
def test_the_pattern_and_the_parser_agree_on_any_text(text: str) -> None:
    try:
        ChargeCreate.model_validate({"value": text})
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert accepted == bool(re.fullmatch(AMOUNT_PATTERN, text))


@pytest.mark.parametrize("key", ["ab\n", "\nab", "", "a b", "k" * 41, "é"])
def test_metadata_keys_outside_the_alphabet_are_refused(key: str) -> None:
    assert "metadata keys" in refusal({"value": "1.00", "metadata": {key: "v"}})


@pytest.mark.parametrize("key", ["a", "order_id", "sku.v2-x", "k" * 40])
def test_metadata_keys_of_the_alphabet_are_kept(key: str) -> None:
    assert ChargeCreate.model_validate({"value": "1.00", "metadata": {key: "v"}}).metadata == {
        key: "v"
    }
