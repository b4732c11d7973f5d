"""CPF and CNPJ check digits, against the published algorithm and well-known examples."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixlive.domain.documents import digits, is_valid_cnpj, is_valid_cpf


def cpf_check_digits(base: str) -> str:
    """The two check digits of a 9-digit CPF base, straight from the Receita's rule."""
    out = base
    for _ in range(2):
        weights = range(len(out) + 1, 1, -1)
        rest = sum(int(d) * w for d, w in zip(out, weights, strict=True)) % 11
        out += "0" if rest < 2 else str(11 - rest)
    return out[9:]


def cnpj_check_digits(base: str) -> str:
    """The two check digits of a 12-digit CNPJ base."""
    out = base
    for _ in range(2):
        weights = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
        if len(out) == 13:
            weights = [6, *weights]
        rest = sum(int(d) * w for d, w in zip(out, weights, strict=True)) % 11
        out += "0" if rest < 2 else str(11 - rest)
    return out[12:]


def format_cpf(number: str) -> str:
    return f"{number[:3]}.{number[3:6]}.{number[6:9]}-{number[9:]}"


def format_cnpj(number: str) -> str:
    return f"{number[:2]}.{number[2:5]}.{number[5:8]}/{number[8:12]}-{number[12:]}"


def _not_all_same(text: str) -> bool:
    return len(set(text)) > 1


cpf_bases = st.text(alphabet="0123456789", min_size=9, max_size=9).filter(_not_all_same)
cnpj_bases = st.text(alphabet="0123456789", min_size=12, max_size=12).filter(_not_all_same)


def test_digits_keeps_only_ascii_digits() -> None:
    assert digits("123.456.789-09") == "12345678909"
    assert digits("12.345.678/0001-95") == "12345678000195"
    assert digits("") == ""
    assert digits("١٢٣ ²") == ""


@pytest.mark.parametrize(
    "cpf", ["529.982.247-25", "52998224725", "111.444.777-35", "123.456.789-09", " 529 982 247 25 "]
)
def test_known_valid_cpf(cpf: str) -> None:
    assert is_valid_cpf(cpf)


@pytest.mark.parametrize(
    "cnpj", ["11.222.333/0001-81", "11222333000181", "12.345.678/0001-95", "00.000.000/0001-91"]
)
def test_known_valid_cnpj(cnpj: str) -> None:
    assert is_valid_cnpj(cnpj)


@given(base=cpf_bases)
def test_every_cpf_built_by_the_algorithm_is_valid(base: str) -> None:
    number = base + cpf_check_digits(base)
    assert is_valid_cpf(number)
    assert is_valid_cpf(format_cpf(number))
    assert not is_valid_cnpj(number)


@given(base=cnpj_bases)
def test_every_cnpj_built_by_the_algorithm_is_valid(base: str) -> None:
    number = base + cnpj_check_digits(base)
    assert is_valid_cnpj(number)
    assert is_valid_cnpj(format_cnpj(number))
    assert not is_valid_cpf(number)


# Only the check digits themselves: a wrong digit in the base is not always caught, as
# both algorithms fold two remainders onto the check digit 0 (the CPF's 0 and 10, the
# CNPJ's 0 and 1); 234.576.216-08 is as valid as 134.576.216-08.
@given(base=cpf_bases, position=st.integers(9, 10), delta=st.integers(1, 9))
def test_any_wrong_check_digit_makes_a_cpf_invalid(base: str, position: int, delta: int) -> None:
    number = list(base + cpf_check_digits(base))
    number[position] = str((int(number[position]) + delta) % 10)
    assert not is_valid_cpf("".join(number))


@given(base=cnpj_bases, position=st.integers(12, 13), delta=st.integers(1, 9))
def test_any_wrong_check_digit_makes_a_cnpj_invalid(base: str, position: int, delta: int) -> None:
    number = list(base + cnpj_check_digits(base))
    number[position] = str((int(number[position]) + delta) % 10)
    assert not is_valid_cnpj("".join(number))


@pytest.mark.parametrize(
    "cpf", ["529.982.247-24", "529.982.247-15", "123.456.789-00", "111.444.777-53"]
)
def test_wrong_check_digits_make_a_cpf_invalid(cpf: str) -> None:
    assert not is_valid_cpf(cpf)


@pytest.mark.parametrize("cnpj", ["11.222.333/0001-80", "11.222.333/0001-18", "12.345.678/0001-59"])
def test_wrong_check_digits_make_a_cnpj_invalid(cnpj: str) -> None:
    assert not is_valid_cnpj(cnpj)


@pytest.mark.parametrize("digit", "0123456789")
def test_repeated_digits_are_refused(digit: str) -> None:
    # 000.000.000-00 and 111.111.111-11 satisfy the arithmetic, yet are never issued.
    assert not is_valid_cpf(digit * 11)
    assert not is_valid_cpf(format_cpf(digit * 11))
    assert not is_valid_cnpj(digit * 14)
    assert not is_valid_cnpj(format_cnpj(digit * 14))


@pytest.mark.parametrize(
    "cpf", ["", "5299822472", "529982247250", "0529982247-25", "52998224725 1"]
)
def test_wrong_length_cpf_is_refused(cpf: str) -> None:
    assert not is_valid_cpf(cpf)


@pytest.mark.parametrize("cnpj", ["", "1122233300018", "112223330001810", "011.222.333/0001-81"])
def test_wrong_length_cnpj_is_refused(cnpj: str) -> None:
    assert not is_valid_cnpj(cnpj)


@pytest.mark.parametrize(
    "cpf", ["abc52998224725", "529.982.247-25x", "529,982,247-25", "５２９９８２２４７２５"]
)
def test_foreign_characters_make_a_cpf_invalid(cpf: str) -> None:
    assert not is_valid_cpf(cpf)
