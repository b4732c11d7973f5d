"""The PSP webhook against a real server: outcomes, the ledger's "once", and authentication
(signature and token modes), each refusal changing nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from pixlive.services.psp import new_end_to_end_id, signed_headers
from pixlive.services.signature import HEADER, sign
from tests.e2e.conftest import Server, assert_error, start_server


def pix(
    txid: str | None, valor: str = "12.34", e2e: str | None = None, **extra: Any
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "endToEndId": e2e or new_end_to_end_id(),
        "valor": valor,
        "horario": "2026-11-28T01:02:03.456Z",
        **extra,
    }
    if txid is not None:
        item["txid"] = txid
    return item


def body_of(*items: dict[str, Any], single: bool = False, **top: Any) -> bytes:
    return orjson.dumps({"pix": items[0] if single else list(items), **top})


def outcomes(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [r["outcome"] for r in answer.json()["results"]]


def test_paid_flow(shared_server: Server) -> None:
    charge = shared_server.create_charge("12.34")
    e2e = new_end_to_end_id()
    answer = shared_server.pay(charge["id"], "12.34", e2e)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == {
        "results": [{"endToEndId": e2e, "outcome": "paid", "payment_id": charge["id"]}]
    }
    paid = shared_server.charge(charge["id"])
    assert paid["status"] == "PAID"
    assert paid["end_to_end_id"] == e2e
    assert paid["paid_at"] is not None
    assert paid["last_event_id"] > charge["last_event_id"]
    # The public view and the list agree.
    assert shared_server.charge(charge["id"], merchant=False)["status"] == "PAID"
    assert charge["id"] in {c["id"] for c in shared_server.charges("PAID")}


def test_paid_at_is_the_psp_horario(shared_server: Server) -> None:
    charge = shared_server.create_charge("12.34")
    item = pix(charge["id"], horario="2026-11-27T22:02:03.456-03:00")
    assert outcomes(shared_server.webhook(body_of(item))) == ["paid"]
    assert shared_server.charge(charge["id"])["paid_at"] == "2026-11-28T01:02:03.456Z"


def test_pix_as_one_object(shared_server: Server) -> None:
    charge = shared_server.create_charge("12.34")
    assert outcomes(shared_server.webhook(body_of(pix(charge["id"]), single=True))) == ["paid"]
    assert shared_server.charge(charge["id"])["status"] == "PAID"


def test_unknown_fields_are_ignored(shared_server: Server) -> None:
    charge = shared_server.create_charge("12.34")
    item = pix(
        charge["id"],
        infoPagador="obrigado",
        chave="sandbox@pixlive.example",
        componentesValor={"original": {"valor": "12.34"}},
        devolucoes=[],
        gnExtras={"pagador": {"nome": "Fulano"}},
    )
    body = body_of(item, parametros={"inicio": "x"}, proximaPagina=None)
    assert outcomes(shared_server.webhook(body)) == ["paid"]


def test_the_same_end_to_end_id_again_is_a_duplicate(shared_server: Server) -> None:
    charge = shared_server.create_charge("12.34")
    e2e = new_end_to_end_id()
    assert outcomes(shared_server.pay(charge["id"], "12.34", e2e)) == ["paid"]
    paid = shared_server.charge(charge["id"])

    again = shared_server.pay(charge["id"], "12.34", e2e)
    assert again.json()["results"] == [
        {"endToEndId": e2e, "outcome": "duplicate", "payment_id": None}
    ]
    assert shared_server.charge(charge["id"]) == paid

    # Even one that claims another charge: the ledger knows that Pix already.
    other = shared_server.create_charge("12.34")
    assert outcomes(shared_server.pay(other["id"], "12.34", e2e)) == ["duplicate"]
    assert shared_server.charge(other["id"]) == other


def test_wrong_value_is_a_mismatch(shared_server: Server) -> None:
    charge = shared_server.create_charge("12.34")
    for valor in ("12.33", "12.35", "1234.00", "0.01"):
        answer = shared_server.pay(charge["id"], valor)
        assert answer.json()["results"][0]["outcome"] == "mismatch"
        assert answer.json()["results"][0]["payment_id"] == charge["id"]
        now = shared_server.charge(charge["id"])
        assert now["status"] == "ACTIVE"
        assert now["end_to_end_id"] is None and now["paid_at"] is None
    # A payment.mismatch event per Pix.
    assert shared_server.charge(charge["id"])["last_event_id"] > charge["last_event_id"]
    # The right amount afterwards still pays it.
    assert outcomes(shared_server.pay(charge["id"], "12.34")) == ["paid"]


def test_money_after_the_end_is_a_mismatch_and_changes_nothing(shared_server: Server) -> None:
    paid = shared_server.create_charge("12.34")
    first = new_end_to_end_id()
    assert outcomes(shared_server.pay(paid["id"], "12.34", first)) == ["paid"]
    assert outcomes(shared_server.pay(paid["id"], "12.34")) == ["mismatch"]
    after = shared_server.charge(paid["id"])
    assert after["status"] == "PAID" and after["end_to_end_id"] == first

    cancelled = shared_server.create_charge("12.34")
    answer = shared_server.http.post(
        f"{shared_server.url}/payments/pix/{cancelled['id']}/cancel", headers=shared_server.auth
    )
    assert answer.status_code == 200
    assert outcomes(shared_server.pay(cancelled["id"], "12.34")) == ["mismatch"]
    assert shared_server.charge(cancelled["id"])["status"] == "CANCELLED"


def test_unknown_txid(shared_server: Server) -> None:
    before = shared_server.charges()
    e2e = new_end_to_end_id()
    answer = shared_server.pay("A" * 25, "12.34", e2e)
    assert answer.json()["results"] == [
        {"endToEndId": e2e, "outcome": "unknown_txid", "payment_id": None}
    ]
    # A Pix without a txid (paid to the key by hand) is recorded the same way.
    assert outcomes(shared_server.webhook(body_of(pix(None)))) == ["unknown_txid"]
    # A txid longer than ours but valid in the API Pix (up to 35 chars).
    assert outcomes(shared_server.webhook(body_of(pix("B" * 35)))) == ["unknown_txid"]
    assert shared_server.charges() == before


def test_several_pix_in_one_delivery(shared_server: Server) -> None:
    one = shared_server.create_charge("12.34")
    two = shared_server.create_charge("5.00")
    repeated = new_end_to_end_id()
    body = body_of(
        pix(one["id"]),
        pix(two["id"], "6.00"),
        pix("Z" * 25),
        pix(two["id"], "5.00", e2e=repeated),
        pix(two["id"], "5.00", e2e=repeated),
    )
    assert outcomes(shared_server.webhook(body)) == [
        "paid",
        "mismatch",
        "unknown_txid",
        "paid",
        "duplicate",
    ]
    assert shared_server.charge(one["id"])["status"] == "PAID"
    assert shared_server.charge(two["id"])["end_to_end_id"] == repeated


def test_the_path_with_pix_appended(shared_server: Server) -> None:
    charge = shared_server.create_charge("12.34")
    answer = shared_server.webhook(
        body_of(pix(charge["id"])), path="/payments/pix/confirmation/pix"
    )
    assert outcomes(answer) == ["paid"]
    assert shared_server.charge(charge["id"])["status"] == "PAID"


# Authentication ------------------------------------------------------------------------


def _refusals(secret: str, body: bytes) -> dict[str, tuple[bytes, dict[str, str]]]:
    now = int(time.time())
    json_type = {"Content-Type": "application/json"}
    tampered = body.replace(b'"12.34"', b'"12.35"')
    assert tampered != body
    return {
        "missing header": (body, json_type),
        "empty header": (body, {**json_type, HEADER: ""}),
        "malformed header": (body, {**json_type, HEADER: "garbage"}),
        "no v1": (body, {**json_type, HEADER: f"t={now}"}),
        "no t": (body, {**json_type, HEADER: "v1=" + "0" * 64}),
        "t not a number": (body, {**json_type, HEADER: "t=abc,v1=" + "0" * 64}),
        "huge t": (body, {**json_type, HEADER: "t=" + "9" * 40 + ",v1=" + "0" * 64}),
        "wrong signature": (body, {**json_type, HEADER: f"t={now},v1=" + "0" * 64}),
        "other secret": (body, signed_headers("whsec_someone_else_0123456789", body)),
        "body changed after signing": (tampered, {**json_type, HEADER: sign(secret, body, now)}),
        "timestamp 301 s old": (body, {**json_type, HEADER: sign(secret, body, now - 301)}),
        # (ahead by a few more, as seconds pass between signing and checking)
        "timestamp 310 s ahead": (body, {**json_type, HEADER: sign(secret, body, now + 310)}),
        "signature of another time": (
            body,
            {**json_type, HEADER: f"t={now}," + sign(secret, body, now - 5).split(",")[1]},
        ),
    }


def test_signature_failures_are_401_and_change_nothing(shared_server: Server) -> None:
    charge = shared_server.create_charge("12.34")
    e2e = new_end_to_end_id()
    body = body_of(pix(charge["id"], "12.34", e2e))
    before = shared_server.charges()
    for case, (content, headers) in _refusals(shared_server.secret, body).items():
        for path in ("/payments/pix/confirmation", "/payments/pix/confirmation/pix"):
            answer = shared_server.webhook(content, headers, path=path)
            assert answer.status_code == 401, (case, answer.text)
            assert_error(answer, 401)
    assert shared_server.charges() == before

    # Nothing reached the ledger: the same Pix, correctly signed, pays now.
    assert outcomes(shared_server.webhook(body)) == ["paid"]
    assert shared_server.charge(charge["id"])["end_to_end_id"] == e2e


def test_a_signature_within_the_tolerance_is_accepted(shared_server: Server) -> None:
    charge = shared_server.create_charge("12.34")
    body = body_of(pix(charge["id"]))
    signed = sign(shared_server.secret, body, int(time.time()) - 250)
    # Several v1 values, as during a secret rotation: one right one is enough.
    header = signed + ",v1=" + "0" * 64
    answer = shared_server.webhook(body, {"Content-Type": "application/json", HEADER: header})
    assert outcomes(answer) == ["paid"]


def test_signature_is_checked_before_the_body_is_read(shared_server: Server) -> None:
    """An unsigned malformed body is a 401, not a 400: strangers learn nothing."""
    for content in (b"{not json", b'{"pix": []}', b"\xff\xfe"):
        answer = shared_server.webhook(content, {"Content-Type": "application/json"})
        assert_error(answer, 401)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("token") / "server", PIXLIVE_WEBHOOK_AUTH="token"
    )
    try:
        yield running
    finally:
        running.stop()


def test_token_mode(token_server: Server) -> None:
    charge = token_server.create_charge("12.34")
    e2e = new_end_to_end_id()
    body = body_of(pix(charge["id"], "12.34", e2e))
    json_type = {"Content-Type": "application/json"}
    refusals: list[dict[str, str] | None] = [
        None,
        {"hmac": ""},
        {"hmac": "wrong"},
        {"hmac": token_server.secret + "x"},
        {"hmac": token_server.secret[:-1]},
        {"token": token_server.secret},
    ]
    for params in refusals:
        answer = token_server.webhook(body, json_type, params=params)
        assert_error(answer, 401)
    # A signature alone is not what this mode asks for.
    assert_error(token_server.webhook(body), 401)
    assert token_server.charge(charge["id"])["status"] == "ACTIVE"

    answer = token_server.webhook(body, json_type, params={"hmac": token_server.secret})
    assert outcomes(answer) == ["paid"]
    assert token_server.charge(charge["id"])["end_to_end_id"] == e2e

    other = token_server.create_charge("1.00")
    answer = token_server.webhook(
        body_of(pix(other["id"], "1.00")),
        json_type,
        path="/payments/pix/confirmation/pix",
        params={"hmac": token_server.secret},
    )
    assert outcomes(answer) == ["paid"]


def test_simulate_payment_in_token_mode(token_server: Server) -> None:
    charge = token_server.create_charge("4.20")
    done = token_server.cli("simulate-payment", charge["id"], "--url", token_server.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert token_server.charge(charge["id"])["status"] == "PAID"


def test_sandbox_button_in_token_mode(token_server: Server) -> None:
    charge = token_server.create_charge("4.20")
    answer = token_server.http.post(f"{token_server.url}/sandbox/payments/{charge['id']}/simulate")
    assert answer.status_code == 303, answer.text
    assert token_server.charge(charge["id"])["status"] == "PAID"


def test_webhook_answers_carry_the_security_headers(shared_server: Server) -> None:
    """The webhook is answered before the middleware (its fast path): it adds them itself."""
    charge = shared_server.create_charge()
    paid = shared_server.pay(charge["id"])
    refused = shared_server.webhook(b"{}", headers={"Content-Type": "application/json"})
    for answer in (paid, refused):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert paid.status_code == 200 and refused.status_code == 401
