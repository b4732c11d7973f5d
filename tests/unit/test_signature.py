"""The webhook signature, `Pixlive-Signature: t=<unix seconds>,v1=<hex>`: what verify()
accepts and refuses, and that the MAC is compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from unittest import mock

import pytest

from pixlive.services import signature
from pixlive.services.signature import SignatureError, mac, sign, verify, verify_token

SECRET = "whsec_unit_" + "k" * 24
BODY = b'{"pix": [{"endToEndId": "E00000000202611280102abcdefghijk"}]}'
NOW = 1_764_291_723
TOLERANCE = 300


def check(header: str | None, body: bytes = BODY, now: float = NOW) -> None:
    verify(SECRET, header, body, now, TOLERANCE)


def right_mac(t: int = NOW, body: bytes = BODY) -> str:
    return mac(SECRET, t, body)


def _flip(char: str) -> str:
    return "0" if char != "0" else "1"


def test_the_mac_is_hmac_sha256_over_t_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert right_mac() == expected
    assert sign(SECRET, BODY, NOW) == f"t={NOW},v1={expected}"


def test_the_right_mac_is_accepted() -> None:
    check(sign(SECRET, BODY, NOW))
    check(f"t={NOW},v1={right_mac()}")
    # spaces after the commas, and the parts in another order
    check(f"v1={right_mac()}, t={NOW}")
    # anywhere within the tolerance, either way
    check(sign(SECRET, BODY, NOW - TOLERANCE))
    check(sign(SECRET, BODY, NOW + TOLERANCE))


def test_one_character_changed_at_the_start_is_refused() -> None:
    good = right_mac()
    with pytest.raises(SignatureError):
        check(f"t={NOW},v1={_flip(good[0])}{good[1:]}")


def test_one_character_changed_at_the_end_is_refused() -> None:
    good = right_mac()
    with pytest.raises(SignatureError):
        check(f"t={NOW},v1={good[:-1]}{_flip(good[-1])}")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda m: m[:-1],  # one character short
        lambda m: m + "0",  # one too many
        lambda m: " " + m,
        lambda m: m[:32],
    ],
    ids=["short", "long", "leading space", "half"],
)
def test_other_shapes_of_the_mac_are_refused(mangle: Callable[[str], str]) -> None:
    with pytest.raises(SignatureError):
        check(f"t={NOW},v1={mangle(right_mac())}")


def test_the_mac_covers_the_body_and_the_time() -> None:
    with pytest.raises(SignatureError):
        check(sign(SECRET, BODY, NOW), body=BODY + b" ")
    with pytest.raises(SignatureError):
        check(f"t={NOW - 1},v1={right_mac()}")
    with pytest.raises(SignatureError):
        check(sign("whsec_another_secret_0123456789", BODY, NOW))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"v1={'0' * 64}",  # missing t
        f"t={NOW}",  # missing v1
        f"t={NOW},v1=",
        f"t=,v1={'0' * 64}",
        f"t=abc,v1={'0' * 64}",  # non-digit t
        f"t=-{NOW},v1={'0' * 64}",
        f"t=+{NOW},v1={'0' * 64}",
        f"t={NOW}.5,v1={'0' * 64}",
        f"t=1e9,v1={'0' * 64}",
        f"t={'1' * 13},v1={'0' * 64}",  # 13 digits: far beyond any real time
        f"t={'9' * 400},v1={'0' * 64}",
        f"T={NOW},v1={'0' * 64}",
    ],
)
def test_malformed_headers_are_refused(header: str | None) -> None:
    with pytest.raises(SignatureError):
        check(header)


@pytest.mark.parametrize(
    "digits",
    [
        "\u00b2" * 10,  # superscript two: isdigit() says yes, int() says no
        "\u0661" * 10,  # Arabic-Indic digits: int() reads them, but they are not what we sign
        "\uff11" * 10,  # full-width digits
    ],
    ids=["superscript", "arabic-indic", "fullwidth"],
)
def test_a_t_of_non_ascii_digits_is_malformed_not_a_crash(digits: str) -> None:
    with pytest.raises(SignatureError):
        check(f"t={digits},v1={'0' * 64}")


def test_a_13_digit_t_is_refused_even_with_its_right_mac() -> None:
    t = 1_000_000_000_000
    with pytest.raises(SignatureError):
        verify(SECRET, sign(SECRET, BODY, t), BODY, t, TOLERANCE)


def test_outside_the_tolerance_is_refused() -> None:
    with pytest.raises(SignatureError, match="tolerance"):
        check(sign(SECRET, BODY, NOW - TOLERANCE - 1))
    with pytest.raises(SignatureError, match="tolerance"):
        check(sign(SECRET, BODY, NOW + TOLERANCE + 1))


def test_several_v1_one_right_is_accepted() -> None:
    wrong = "0" * 64
    check(f"t={NOW},v1={wrong},v1={right_mac()}")
    check(f"t={NOW},v1={right_mac()},v1={wrong}")
    old = mac("whsec_old_secret_0123456789abcdef", NOW, BODY)
    check(f"t={NOW},v1={old},v1={right_mac()},v0=whatever")
    with pytest.raises(SignatureError):
        check(f"t={NOW},v1={wrong},v1={old}")


def test_the_error_says_nothing_of_the_expected_mac() -> None:
    with pytest.raises(SignatureError) as caught:
        check(f"t={NOW},v1={'0' * 64}")
    assert right_mac() not in str(caught.value)
    assert SECRET not in str(caught.value)


def test_the_comparison_is_hmac_compare_digest() -> None:
    with mock.patch.object(signature.hmac, "compare_digest", wraps=hmac.compare_digest) as spy:
        check(sign(SECRET, BODY, NOW))
        assert spy.call_count >= 1
        assert (right_mac(), right_mac()) in [call.args for call in spy.call_args_list]

        spy.reset_mock()
        wrong = "f" * 64
        with pytest.raises(SignatureError):
            check(f"t={NOW},v1={wrong}")
        assert [call.args for call in spy.call_args_list] == [(right_mac(), wrong)]

    # And its answer is the one that counts: a compare_digest that says "no" refuses the
    # right MAC, one that says "yes" lets a wrong one through (so no `==` is used besides).
    with (
        mock.patch.object(signature.hmac, "compare_digest", return_value=False),
        pytest.raises(SignatureError),
    ):
        check(sign(SECRET, BODY, NOW))
    with mock.patch.object(signature.hmac, "compare_digest", return_value=True):
        check(f"t={NOW},v1={'0' * 64}")


def test_the_token_mode_compares_in_constant_time_too() -> None:
    verify_token(SECRET, SECRET)
    for token in (None, "", SECRET[:-1], SECRET + "x", "x" + SECRET[1:]):
        with pytest.raises(SignatureError):
            verify_token(SECRET, token)
    with mock.patch.object(signature.hmac, "compare_digest", wraps=hmac.compare_digest) as spy:
        verify_token(SECRET, SECRET)
    spy.assert_called_once_with(SECRET.encode(), SECRET.encode())
