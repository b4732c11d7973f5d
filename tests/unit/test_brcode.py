"""The BR Code builder: the Banco Central's example, then properties over many inputs."""

from __future__ import annotations

import binascii
import string
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pixlive.domain.brcode import build_brcode, crc16, fold_ascii, parse_tlv, verify_crc

BC_EXAMPLE = (
    "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000"
    "5204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D"
)
PRINTABLE_ASCII = frozenset(chr(c) for c in range(0x20, 0x7F))
ALNUM = string.ascii_letters + string.digits

keys = st.text(alphabet=sorted(PRINTABLE_ASCII), min_size=1, max_size=77)
txids = st.one_of(st.just("***"), st.text(alphabet=ALNUM, min_size=1, max_size=25))
# Any text at all, including accents, emoji, control chars and odd whitespace; filtered
# to what leaves at least one ASCII char once folded, as the builder requires.
names = st.text(min_size=1, max_size=60).filter(lambda s: fold_ascii(s, 25) != "")
cities = st.text(min_size=1, max_size=40).filter(lambda s: fold_ascii(s, 15) != "")
cents = st.integers(min_value=1, max_value=999_999_999_999)


def walk(code: str) -> list[tuple[str, int, str]]:
    """Every field as (tag, declared length, value), checking each length as it goes."""
    out = []
    pos = 0
    while pos < len(code):
        tag, length = code[pos : pos + 2], int(code[pos + 2 : pos + 4])
        value = code[pos + 4 : pos + 4 + length]
        assert len(value) == length, f"field {tag} declares {length} but has {len(value)}"
        out.append((tag, length, value))
        pos += 4 + length
    assert pos == len(code)
    return out


def test_banco_central_example_byte_for_byte() -> None:
    code = build_brcode(
        key="123e4567-e12b-12d1-a456-426655440000",
        merchant_name="Fulano de Tal",
        merchant_city="BRASILIA",
        txid="***",
        amount_cents=None,
        one_time=False,
    )
    assert code == BC_EXAMPLE
    assert verify_crc(code)


def test_crc16_is_ccitt_false() -> None:
    # The catalogue check value of CRC-16/CCITT-FALSE.
    assert crc16(b"123456789") == "29B1"
    assert crc16(b"") == "FFFF"
    assert crc16(BC_EXAMPLE[:-4].encode()) == "1D3D"


def test_field_order_of_a_one_time_charge() -> None:
    code = build_brcode(
        key="pix@example.com",
        merchant_name="Loja",
        merchant_city="Recife",
        txid="abc123",
        amount_cents=1234,
    )
    assert [tag for tag, _, _ in walk(code)] == [
        "00", "01", "26", "52", "53", "54", "58", "59", "60", "62", "63",
    ]  # fmt: skip
    fields = parse_tlv(code)
    assert fields["01"] == "12"
    assert fields["54"] == "12.34"
    assert fields["62"] == "0506abc123"


def test_a_reusable_code_has_no_field_01_and_no_amount() -> None:
    code = build_brcode(
        key="k", merchant_name="Loja", merchant_city="Recife", txid="***", one_time=False
    )
    fields = parse_tlv(code)
    assert "01" not in fields
    assert "54" not in fields


@given(
    key=keys, name=names, city=cities, txid=txids,
    amount=st.none() | cents, one_time=st.booleans(),
)  # fmt: skip
def test_structure_holds_for_any_input(
    key: str, name: str, city: str, txid: str, amount: int | None, one_time: bool
) -> None:
    code = build_brcode(
        key=key,
        merchant_name=name,
        merchant_city=city,
        txid=txid,
        amount_cents=amount,
        one_time=one_time,
    )
    assert set(code) <= PRINTABLE_ASCII
    assert verify_crc(code)
    assert code[-8:-4] == "6304"
    assert code[-4:] == f"{binascii.crc_hqx(code[:-4].encode(), 0xFFFF):04X}"

    top = walk(code)
    fields = {tag: value for tag, _, value in top}
    assert parse_tlv(code) == fields
    assert top[0] == ("00", 2, "01")
    assert top[-1][0] == "63"
    assert ("01" in fields) is one_time

    account = dict((t, v) for t, _, v in walk(fields["26"]))
    assert account == {"00": "br.gov.bcb.pix", "01": key}
    assert dict((t, v) for t, _, v in walk(fields["62"])) == {"05": txid}

    assert fields["59"] == fold_ascii(name, 25)
    assert fields["60"] == fold_ascii(city, 15)
    assert 1 <= len(fields["59"]) <= 25
    assert 1 <= len(fields["60"]) <= 15


@given(amount=cents)
@example(amount=1)
@example(amount=10)
@example(amount=100)
@example(amount=999_999_999_999)
def test_amount_has_two_decimals_and_parses_back(amount: int) -> None:
    code = build_brcode(
        key="k", merchant_name="Loja", merchant_city="Recife", txid="***", amount_cents=amount
    )
    value = parse_tlv(code)["54"]
    assert len(value) <= 13
    whole, _, frac = value.partition(".")
    assert len(frac) == 2 and frac.isdigit()
    assert whole.isdigit() and (whole == "0" or not whole.startswith("0"))
    assert int(Decimal(value) * 100) == amount


@given(text=st.text(max_size=80), limit=st.integers(min_value=0, max_value=30))
def test_fold_ascii_gives_tidy_printable_ascii(text: str, limit: int) -> None:
    folded = fold_ascii(text, limit)
    assert len(folded) <= limit
    assert set(folded) <= PRINTABLE_ASCII
    assert folded == folded.strip()
    assert "  " not in folded


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("São Paulo", 15, "Sao Paulo"),
        ("  Açaí   da\tJoão  ", 25, "Acai da Joao"),
        ("Ñandú ÇÃÕ ü", 25, "Nandu CAO u"),
        ("Padaria € Pão", 25, "Padaria Pao"),
        ("Florianópolis do Sul", 15, "Florianopolis d"),
        ("Rio de Janeiro Capital", 15, "Rio de Janeiro"),  # no trailing space after the cut
        ("ﬁ", 5, "fi"),
        ("日本", 5, ""),
    ],
)
def test_fold_ascii_examples(text: str, limit: int, expected: str) -> None:
    assert fold_ascii(text, limit) == expected


def test_long_accented_name_and_city_are_cut() -> None:
    code = build_brcode(
        key="k",
        merchant_name="Comércio de Calçados Irmãos Araújo Ltda",
        merchant_city="São José dos Campos",
        txid="***",
    )
    fields = parse_tlv(code)
    assert fields["59"] == "Comercio de Calcados Irma"
    assert fields["60"] == "Sao Jose dos Ca"


def _build(**overrides: object) -> str:
    args: dict[str, object] = {
        "key": "k",
        "merchant_name": "Loja",
        "merchant_city": "Recife",
        "txid": "***",
        "amount_cents": 100,
    }
    args.update(overrides)
    return build_brcode(**args)  # type: ignore[arg-type]


def test_a_77_char_key_fits_and_fills_field_26() -> None:
    code = _build(key="k" * 77)
    assert len(parse_tlv(code)["26"]) == 99


@pytest.mark.parametrize("key", ["k" * 78, "", "chave-çom-acento", "tab\tkey"])
def test_bad_key_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        _build(key=key)


@pytest.mark.parametrize(
    "txid", ["", "a" * 26, "has space", "dash-id", "under_score", "**", "****", "ção", "abc\n"]
)
def test_bad_txid_is_refused(txid: str) -> None:
    with pytest.raises(ValueError, match="txid"):
        _build(txid=txid)


@pytest.mark.parametrize("txid", ["a", "A" * 25, "***", "0123456789abcdefXYZ"])
def test_good_txid_is_kept(txid: str) -> None:
    assert parse_tlv(parse_tlv(_build(txid=txid))["62"]) == {"05": txid}


@pytest.mark.parametrize("amount", [1_000_000_000_000, 10**20])
def test_too_large_amount_is_refused(amount: int) -> None:
    with pytest.raises(ValueError, match="longer than 13"):
        _build(amount_cents=amount)


@pytest.mark.parametrize("amount", [0, -1, True])
def test_non_positive_amount_is_refused(amount: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        _build(amount_cents=amount)


@pytest.mark.parametrize(("field", "value"), [("merchant_name", "日本"), ("merchant_city", " \t ")])
def test_name_or_city_that_folds_to_nothing_is_refused(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field.removeprefix("merchant_")):
        _build(**{field: value})


def test_verify_crc_rejects_any_altered_code() -> None:
    assert not verify_crc(BC_EXAMPLE.replace("Fulano", "Fulana"))
    assert not verify_crc(BC_EXAMPLE[:-1] + "E")
    assert not verify_crc(BC_EXAMPLE[:-4] + "1d3d")
    assert not verify_crc(BC_EXAMPLE[:-8])
    assert not verify_crc("")
    assert not verify_crc("ção" + BC_EXAMPLE)


@pytest.mark.parametrize("bad", ["0", "000", "0002", "00020", "0003012X", "000201000201", "0a01x"])
def test_parse_tlv_refuses_malformed_text(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_tlv(bad)
