"""What a client or a PSP can get wrong: each is a 4xx with the error shape, and nothing
changes (the list of charges is the same before and after; the ledger takes nothing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from pixlive.services.psp import new_end_to_end_id
from tests.e2e.conftest import Server, assert_error

VALID_CPF = "529.982.247-25"
VALID_CNPJ = "11.222.333/0001-81"
MIB = 1024 * 1024


@pytest.fixture
def unchanged(shared_server: Server) -> Iterator[None]:
    """Fails the test if the charges (ids, states, events) differ after it."""
    before = shared_server.charges()
    yield
    assert shared_server.charges() == before


def post_raw(server: Server, content: bytes, **headers: str) -> httpx.Response:
    return server.http.post(
        "/payments/pix",
        content=content,
        headers={**server.auth, "Content-Type": "application/json", **headers},
    )


# Creating a charge ---------------------------------------------------------------------

BAD_BODIES: dict[str, Any] = {
    "no value": {},
    "value null": {"value": None},
    "value true": {"value": True},
    "value a list": {"value": ["12.34"]},
    "value an object": {"value": {"amount": "12.34"}},
    "value zero": {"value": 0},
    "value a whole number": {"value": 1234},
    "value a number with two decimals": {"value": 12.34},
    "value no decimals": {"value": "12"},
    "value one decimal": {"value": "12.3"},
    "value a dot and no decimals": {"value": "12."},
    "value zero string": {"value": "0.00"},
    "value negative": {"value": -5},
    "value negative string": {"value": "-5.00"},
    "value three decimals": {"value": "12.345"},
    "value three decimals number": {"value": 12.345},
    "value too large": {"value": "10000000000.00"},
    "value too large number": {"value": 10000000000.00},
    "value huge int": {"value": 10**30},
    "value exponent": {"value": "1e3"},
    "value exponent number": {"value": 1e20},
    "value NaN text": {"value": "NaN"},
    "value Infinity text": {"value": "Infinity"},
    "value comma": {"value": "12,34"},
    "value spaces": {"value": " 12.34"},
    "value leading zero": {"value": "012.34"},
    "value trailing newline": {"value": "12.34\n"},
    "value empty": {"value": ""},
    "value plus sign": {"value": "+12.34"},
    "value unicode digits": {"value": "١٢.٣٤"},
    "description a number": {"value": "1.00", "description": 5},
    "description 141 chars": {"value": "1.00", "description": "x" * 141},
    "expires_in 59": {"value": "1.00", "expires_in": 59},
    "expires_in 2592001": {"value": "1.00", "expires_in": 2592001},
    "expires_in a string": {"value": "1.00", "expires_in": "600"},
    "expires_in a float": {"value": "1.00", "expires_in": 600.5},
    "expires_in negative": {"value": "1.00", "expires_in": -1},
    "unknown field": {"value": "1.00", "amount": "1.00"},
    "unknown payer field": {"value": "1.00", "payer": {"name": "A", "email": "a@b.c"}},
    "payer a string": {"value": "1.00", "payer": "Fulano"},
    "payer empty name": {"value": "1.00", "payer": {"name": ""}},
    "invalid CPF": {"value": "1.00", "payer": {"name": "A", "cpf": "529.982.247-24"}},
    "CPF all ones": {"value": "1.00", "payer": {"name": "A", "cpf": "111.111.111-11"}},
    "CPF short": {"value": "1.00", "payer": {"name": "A", "cpf": "1234"}},
    "invalid CNPJ": {"value": "1.00", "payer": {"name": "A", "cnpj": "11.222.333/0001-82"}},
    "both cpf and cnpj": {
        "value": "1.00",
        "payer": {"name": "A", "cpf": VALID_CPF, "cnpj": VALID_CNPJ},
    },
    "21 metadata pairs": {"value": "1.00", "metadata": {f"k{i}": "v" for i in range(21)}},
    "metadata a list": {"value": "1.00", "metadata": [["k", "v"]]},
    "metadata value a number": {"value": "1.00", "metadata": {"k": 1}},
    "metadata value 501 chars": {"value": "1.00", "metadata": {"k": "v" * 501}},
    "metadata key with spaces": {"value": "1.00", "metadata": {"a key": "v"}},
    "metadata key 41 chars": {"value": "1.00", "metadata": {"k" * 41: "v"}},
    "metadata key ending in a newline": {"value": "1.00", "metadata": {"ab\n": "v"}},
    "metadata key empty": {"value": "1.00", "metadata": {"": "v"}},
    "body a list": [{"value": "1.00"}],
    "body a string": "1.00",
    "body null": None,
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
@pytest.mark.usefixtures("unchanged")
def test_invalid_charges_are_refused(shared_server: Server, body: Any) -> None:
    answer = post_raw(shared_server, json.dumps(body).encode())
    assert_error(answer, 422)


@pytest.mark.parametrize("value", [1234, 12.34, 1e2, 0, -1])
@pytest.mark.usefixtures("unchanged")
def test_a_number_is_refused_with_the_format_to_use(shared_server: Server, value: Any) -> None:
    """1234 reads as centavos to a developer used to Stripe, as reais to the API Pix: the
    answer says how to send it instead."""
    answer = post_raw(shared_server, orjson.dumps({"value": value}))
    assert_error(answer, 422, "invalid_request")
    message = answer.json()["error"]["message"]
    assert 'send value as a string with two decimals, e.g. "12.34"' in message, message


@pytest.mark.usefixtures("unchanged")
def test_a_comma_is_refused_with_a_message_that_says_to_use_a_dot(shared_server: Server) -> None:
    answer = post_raw(shared_server, b'{"value": "12,34"}')
    assert_error(answer, 422, "invalid_request")
    message = answer.json()["error"]["message"]
    assert "dot" in message and '"12.34"' in message, message


@pytest.mark.usefixtures("unchanged")
def test_the_message_names_the_field_and_the_format(shared_server: Server) -> None:
    answer = post_raw(shared_server, b'{"value": "12.3"}')
    message = answer.json()["error"]["message"]
    assert message.startswith("value: ") and '"12.34"' in message, message


@pytest.mark.parametrize(
    "content",
    [b'{"value": ', b"{'value': '1.00'}", b'{"value": "1.00",}', b"\xff\xfe{}", b"nul", b"{}}"],
)
@pytest.mark.usefixtures("unchanged")
def test_malformed_json(shared_server: Server, content: bytes) -> None:
    answer = post_raw(shared_server, content)
    assert answer.status_code in (400, 422)
    assert_error(answer, answer.status_code)


@pytest.mark.usefixtures("unchanged")
def test_empty_body(shared_server: Server) -> None:
    assert_error(post_raw(shared_server, b""), 422)


def test_edges_of_the_limits_are_valid(shared_server: Server) -> None:
    ok = [
        {"value": "0.01"},
        {"value": "9999999999.99"},
        {"value": "1.00", "description": "x" * 140},
        {"value": "1.00", "expires_in": 60},
        {"value": "1.00", "expires_in": 2592000},
        {"value": "1.00", "metadata": {f"k{i}": "v" * 500 for i in range(20)}},
        {"value": "1.00", "metadata": {"k" * 40: "v"}},
        {"value": "1.00", "payer": {"name": "A", "cpf": "52998224725"}},
        {"value": "1.00", "payer": {"cnpj": VALID_CNPJ}},
    ]
    for body in ok:
        answer = post_raw(shared_server, json.dumps(body).encode())
        assert answer.status_code == 201, (body, answer.text)


# Body size -----------------------------------------------------------------------------


def _big_body(size: int) -> bytes:
    head, tail = b'{"value": "1.00", "description": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "path", ["/payments/pix", "/payments/pix/confirmation", "/sandbox/charges"]
)
def test_body_over_one_mib_with_content_length(shared_server: Server, path: str) -> None:
    body = _big_body(MIB + 1)
    answer = shared_server.http.post(
        path,
        content=body,
        headers={**shared_server.auth, "Content-Type": "application/json"},
    )
    assert_error(answer, 413, "payload_too_large")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("path", ["/payments/pix", "/payments/pix/confirmation"])
def test_body_over_one_mib_chunked(shared_server: Server, path: str) -> None:
    body = _big_body(2 * MIB)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    request = httpx.Request(
        "POST",
        shared_server.url + path,
        content=chunks(),
        headers={**shared_server.auth, "Content-Type": "application/json"},
    )
    assert "content-length" not in request.headers
    assert request.headers.get("transfer-encoding") == "chunked"
    with httpx.Client() as client:
        try:
            answer = client.send(request)
        except httpx.WriteError:
            pytest.skip("the server closed the connection before the answer could be read")
    assert_error(answer, 413, "payload_too_large")


def test_a_body_just_under_the_limit_is_read(shared_server: Server) -> None:
    body = _big_body(MIB)
    answer = post_raw(shared_server, body)
    # Read and validated (the description is too long), not refused for its size.
    assert_error(answer, 422, "invalid_request")


# Ids -----------------------------------------------------------------------------------

UNKNOWN_ID = "Zz9" * 8 + "Q"  # 25 characters of the right alphabet, never issued
MALFORMED_IDS = [
    "a" * 26,
    "a" * 24,
    "a" * 1000,
    "..%2F",
    "..%2F..%2Fetc%2Fpasswd",
    "%00",
    "a" * 24 + "%00",
    "a" * 24 + "-",
    "a" * 24 + "%C3%A9",
    "%2e%2e",
    "a%20" + "a" * 21,
]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("payment_id", [UNKNOWN_ID, *MALFORMED_IDS])
def test_unknown_and_malformed_ids_are_404(shared_server: Server, payment_id: str) -> None:
    base = f"{shared_server.url}/payments/pix/{payment_id}"
    for method, url, headers in [
        ("GET", base, {}),
        ("GET", base, shared_server.auth),
        ("GET", base, {"Accept": "text/html"}),
        ("GET", base + "/qrcode.svg", {}),
        ("GET", base + "/qrcode.png", {}),
        ("POST", base + "/cancel", shared_server.auth),
        ("POST", f"{shared_server.url}/sandbox/payments/{payment_id}/simulate", {}),
    ]:
        # (Starlette answers "/payments/pix/..%2F" with a redirect to drop the slash first.)
        answer = shared_server.http.request(method, url, headers=headers, follow_redirects=True)
        assert answer.status_code == 404, (method, url, answer.status_code, answer.text)
        if headers.get("Accept") == "text/html":
            # A browser gets the page in Portuguese (issue 14), a program the error JSON.
            assert answer.headers["content-type"].startswith("text/html"), answer.headers
            assert "não encontrada" in answer.text
        else:
            assert_error(answer, 404)


# The webhook ---------------------------------------------------------------------------


@pytest.fixture
def target(shared_server: Server) -> Iterator[dict[str, Any]]:
    """An ACTIVE charge that the malformed deliveries name, and the endToEndId they carry:
    the charge must stay as it is, and that Pix must not reach the ledger."""
    charge = shared_server.create_charge("12.34")
    charge["e2e"] = new_end_to_end_id()
    before = shared_server.charges()
    yield charge
    assert shared_server.charges() == before
    # Nothing was booked: the Pix the bad deliveries carried, sent well, pays the charge.
    answer = shared_server.pay(charge["id"], "12.34", charge["e2e"])
    assert answer.json()["results"][0]["outcome"] == "paid"


def _pix(target: dict[str, Any], **changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "endToEndId": target["e2e"],
        "txid": target["id"],
        "valor": "12.34",
        "horario": "2026-11-28T01:02:03.456Z",
    }
    for key, value in changes.items():
        if value is _DROP:
            item.pop(key)
        else:
            item[key] = value
    return item


_DROP = object()

BAD_PIX: dict[str, dict[str, Any]] = {
    "valor three decimals": {"valor": "1.234"},
    "valor one decimal": {"valor": "12.3"},
    "valor no decimals": {"valor": "12"},
    "valor negative": {"valor": "-12.34"},
    "valor NaN": {"valor": "NaN"},
    "valor Infinity": {"valor": "Infinity"},
    "valor exponent": {"valor": "1.234e1"},
    "valor a number": {"valor": 12.34},
    "valor null": {"valor": None},
    "valor missing": {"valor": _DROP},
    "valor too large": {"valor": "99999999999.00"},
    "valor zero": {"valor": "0.00"},
    "endToEndId missing": {"endToEndId": _DROP},
    "endToEndId null": {"endToEndId": None},
    "endToEndId short": {"endToEndId": "E123"},
    "endToEndId 33 chars": {"endToEndId": "E" + "9" * 32},
    "endToEndId with a dash": {"endToEndId": "E" + "9" * 30 + "-"},
    "txid a number": {"txid": 12345},
    "txid with symbols": {"txid": "abc/../def"},
    "txid 36 chars": {"txid": "a" * 36},
    "horario missing": {"horario": _DROP},
    "horario garbage": {"horario": "yesterday at noon"},
    "horario without zone": {"horario": "2026-11-28T01:02:03"},
    "horario year 1 ahead of UTC": {"horario": "0001-01-01T00:00:00+14:00"},
    "horario year 9999 behind UTC": {"horario": "9999-12-31T23:59:59-14:00"},
    "horario a number": {"horario": 1764291723},
    "infoPagador 141 chars": {"infoPagador": "x" * 141},
}


@pytest.mark.parametrize("changes", BAD_PIX.values(), ids=BAD_PIX.keys())
def test_malformed_pix_is_refused(
    shared_server: Server, target: dict[str, Any], changes: dict[str, Any]
) -> None:
    body = orjson.dumps({"pix": [_pix(target, **changes)]})
    answer = shared_server.webhook(body)
    assert 400 <= answer.status_code < 500, answer.text
    assert_error(answer, answer.status_code)
    # As one object too.
    single = orjson.dumps({"pix": _pix(target, **changes)})
    assert 400 <= shared_server.webhook(single).status_code < 500


BAD_DELIVERIES: dict[str, bytes] = {
    "not JSON": b"{pix",
    "invalid UTF-8": b'{"pix": [{"endToEndId": "\xff\xfe\xfd"}]}',
    "a list": b"[]",
    "null": b"null",
    "no pix": b'{"other": []}',
    "pix null": b'{"pix": null}',
    "pix empty": b'{"pix": []}',
    "pix a string": b'{"pix": "E999"}',
    "pix a list of strings": b'{"pix": ["E999"]}',
    "empty body": b"",
    "NaN literal": b'{"pix": [{"valor": NaN}]}',
}


@pytest.mark.parametrize("body", BAD_DELIVERIES.values(), ids=BAD_DELIVERIES.keys())
def test_malformed_deliveries_are_refused(
    shared_server: Server, target: dict[str, Any], body: bytes
) -> None:
    answer = shared_server.webhook(body)
    assert 400 <= answer.status_code < 500, answer.text
    assert_error(answer, answer.status_code)


def test_1001_pix_in_one_delivery(shared_server: Server, target: dict[str, Any]) -> None:
    items = [_pix(target)] + [
        _pix(target, txid="Q" * 25, endToEndId=new_end_to_end_id()) for _ in range(1000)
    ]
    answer = shared_server.webhook(orjson.dumps({"pix": items}))
    assert_error(answer, 422)


def test_one_bad_pix_refuses_the_whole_delivery(
    shared_server: Server, target: dict[str, Any]
) -> None:
    """The PSP resends the delivery; a half-taken one would book the good Pix twice."""
    items = [_pix(target), _pix(target, endToEndId="E1")]
    answer = shared_server.webhook(orjson.dumps({"pix": items}))
    assert_error(answer, 422)
