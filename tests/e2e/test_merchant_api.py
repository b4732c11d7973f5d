"""The merchant API against a real server: keys, the charge's JSON, the public views,
listing with cursors, cancel, and Idempotency-Key."""

from __future__ import annotations

import itertools
import re
from datetime import datetime

import pytest

from pixlive.domain.brcode import parse_tlv, verify_crc
from tests.e2e.conftest import Server, assert_error

PUBLIC_FIELDS = {
    "id",
    "status",
    "value",
    "description",
    "created_at",
    "expires_at",
    "paid_at",
    "end_to_end_id",
    "pix_copia_e_cola",
    "qr_code_url",
    "payment_url",
    "last_event_id",
}
MERCHANT_FIELDS = PUBLIC_FIELDS | {"payer", "metadata", "return_url"}
CHARGE_ID = re.compile(r"[A-Za-z0-9]{25}")
ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
VALID_CPF = "529.982.247-25"


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# Keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/payments/pix"),
        ("GET", "/payments/pix"),
        ("POST", "/payments/pix/" + "a" * 25 + "/cancel"),
    ],
)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer pxl_not-a-key-that-exists",
        "Bearer not-even-prefixed",
        "Basic dXNlcjpwYXNz",
        "Bearer " + "pxl_" + "x" * 500,
    ],
)
def test_merchant_routes_need_a_valid_key(
    shared_server: Server, method: str, path: str, authorization: str | None
) -> None:
    before = len(shared_server.charges())
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = shared_server.http.request(
        method, shared_server.url + path, json={"value": "1.00"}, headers=headers
    )
    assert_error(answer, 401, "unauthorized")
    assert answer.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert len(shared_server.charges()) == before


def test_a_revoked_key_gets_401(shared_server: Server) -> None:
    made = shared_server.cli("apikey", "create", "to-revoke")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {key}"}
    assert shared_server.http.get("/payments/pix", headers=headers).status_code == 200

    revoked = shared_server.cli("apikey", "revoke", "to-revoke")
    assert revoked.returncode == 0, revoked.stderr
    assert_error(shared_server.http.get("/payments/pix", headers=headers), 401)
    assert_error(
        shared_server.http.post("/payments/pix", json={"value": "1"}, headers=headers),
        401,
    )
    # The server's own key is untouched.
    assert shared_server.http.get("/payments/pix", headers=shared_server.auth).is_success


# Creating a charge ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["12.34", "0.01", "0.10", "12.00", "9999999999.99"])
def test_create_takes_the_value_as_a_string_with_two_decimals(
    shared_server: Server, value: str
) -> None:
    answer = shared_server.http.post(
        "/payments/pix", json={"value": value}, headers=shared_server.auth
    )
    assert answer.status_code == 201, answer.text
    charge = answer.json()
    assert charge["value"] == value
    assert parse_tlv(charge["pix_copia_e_cola"])["54"] == value


def test_the_charge_has_every_field_of_the_design(shared_server: Server) -> None:
    charge = shared_server.create_charge("12.34", description="Pedido 42", expires_in=600)
    assert set(charge) == MERCHANT_FIELDS
    assert CHARGE_ID.fullmatch(charge["id"])
    assert charge["status"] == "ACTIVE"
    assert charge["value"] == "12.34"
    assert charge["description"] == "Pedido 42"
    assert ISO_UTC.fullmatch(charge["created_at"]) and ISO_UTC.fullmatch(charge["expires_at"])
    lifetime = moment(charge["expires_at"]) - moment(charge["created_at"])
    assert lifetime.total_seconds() == 600
    assert charge["paid_at"] is None and charge["end_to_end_id"] is None
    assert isinstance(charge["last_event_id"], int) and charge["last_event_id"] >= 1
    assert charge["payer"] is None and charge["metadata"] == {}

    payment_url = f"{shared_server.url}/payments/pix/{charge['id']}"
    assert charge["payment_url"] == payment_url
    assert charge["qr_code_url"] == payment_url + "/qrcode.svg"

    code = charge["pix_copia_e_cola"]
    assert verify_crc(code)
    fields = parse_tlv(code)
    assert fields["00"] == "01"
    assert fields["01"] == "12"
    assert fields["52"] == "0000" and fields["53"] == "986" and fields["58"] == "BR"
    assert fields["54"] == "12.34"
    account = parse_tlv(fields["26"])
    assert account["00"] == "br.gov.bcb.pix" and account["01"]
    assert parse_tlv(fields["62"])["05"] == charge["id"]
    assert fields["59"] and fields["60"]

    # Every charge has its own, unguessable id.
    other = shared_server.create_charge("12.34")
    assert other["id"] != charge["id"]


def test_default_expiry_is_thirty_minutes(shared_server: Server) -> None:
    charge = shared_server.create_charge("1.00")
    lifetime = moment(charge["expires_at"]) - moment(charge["created_at"])
    assert lifetime.total_seconds() == 1800


def test_merchant_view_has_payer_and_metadata_public_view_does_not(
    shared_server: Server,
) -> None:
    created = shared_server.create_charge(
        "12.34",
        description="Camiseta",
        payer={"name": "Fulano de Tal", "cpf": VALID_CPF},
        metadata={"order_id": "42", "sku": "tee-01"},
    )
    assert created["payer"] == {"name": "Fulano de Tal", "cpf": "52998224725", "cnpj": None}
    assert created["metadata"] == {"order_id": "42", "sku": "tee-01"}

    merchant = shared_server.charge(created["id"])
    assert set(merchant) == MERCHANT_FIELDS
    assert merchant["payer"] == created["payer"]
    assert merchant["metadata"] == created["metadata"]

    public = shared_server.charge(created["id"], merchant=False)
    assert set(public) == PUBLIC_FIELDS
    assert "52998224725" not in shared_server.http.get(created["payment_url"]).text
    assert {k: v for k, v in merchant.items() if k in PUBLIC_FIELDS} == public

    # A wrong key on the public route is refused, not silently downgraded.
    answer = shared_server.http.get(
        created["payment_url"], headers={"Authorization": "Bearer pxl_wrong"}
    )
    assert_error(answer, 401)


def test_cnpj_payer(shared_server: Server) -> None:
    created = shared_server.create_charge(
        "1.00", payer={"name": "Empresa", "cnpj": "11.222.333/0001-81"}
    )
    assert created["payer"]["cnpj"] == "11222333000181"


def test_html_page_when_the_client_asks_for_html(shared_server: Server) -> None:
    charge = shared_server.create_charge("1234.56", description="<script>alert(1)</script> & café")
    answer = shared_server.http.get(charge["payment_url"], headers={"Accept": "text/html"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "R$ 1.234,56" in answer.text
    assert charge["pix_copia_e_cola"] in answer.text
    # The description is the merchant's text, shown escaped.
    assert "<script>alert(1)</script>" not in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; café" in answer.text

    small = shared_server.create_charge("12.34")
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    page = shared_server.http.get(small["payment_url"], headers=browser)
    assert page.headers["content-type"].startswith("text/html")
    assert "R$ 12,34" in page.text
    assert "no-store" in page.headers.get("cache-control", "")

    as_json = shared_server.http.get(small["payment_url"], headers={"Accept": "application/json"})
    assert as_json.headers["content-type"].startswith("application/json")


def test_qr_codes(shared_server: Server) -> None:
    charge = shared_server.create_charge("12.34")
    svg = shared_server.http.get(charge["qr_code_url"])
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content

    png = shared_server.http.get(charge["payment_url"] + "/qrcode.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")


# Listing -------------------------------------------------------------------------------


def test_list_is_newest_first_and_filters_by_status(shared_server: Server) -> None:
    made = [shared_server.create_charge("3.00", description=f"list {i}") for i in range(4)]
    paid, cancelled = made[1], made[2]
    assert shared_server.pay(paid["id"], "3.00").json()["results"][0]["outcome"] == "paid"
    answer = shared_server.http.post(
        f"{shared_server.url}/payments/pix/{cancelled['id']}/cancel", headers=shared_server.auth
    )
    assert answer.status_code == 200

    listed = shared_server.charges()
    keys = [(moment(c["created_at"]), c["id"]) for c in listed]
    assert keys == sorted(keys, reverse=True)
    assert len({c["id"] for c in listed}) == len(listed)
    positions = {c["id"]: i for i, c in enumerate(listed)}
    for older, newer in itertools.pairwise(made):
        if moment(newer["created_at"]) > moment(older["created_at"]):
            assert positions[newer["id"]] < positions[older["id"]]
    assert all(set(c) == MERCHANT_FIELDS for c in listed)

    by_status = {s: shared_server.charges(s) for s in ("ACTIVE", "PAID", "CANCELLED", "EXPIRED")}
    for status, charges in by_status.items():
        assert all(c["status"] == status for c in charges), status
    assert paid["id"] in {c["id"] for c in by_status["PAID"]}
    assert cancelled["id"] in {c["id"] for c in by_status["CANCELLED"]}
    assert made[0]["id"] in {c["id"] for c in by_status["ACTIVE"]}
    assert paid["id"] not in {c["id"] for c in by_status["ACTIVE"]}
    assert sum(len(c) for c in by_status.values()) == len(listed)


def test_cursor_pagination_has_no_repeat_and_no_gap(server: Server) -> None:
    made = [server.create_charge("1.00", description=f"page {i}")["id"] for i in range(25)]
    everything = [c["id"] for c in server.charges()]
    assert sorted(everything) == sorted(made)

    pages: list[list[str]] = []
    params: dict[str, str] = {"limit": "10"}
    while True:
        answer = server.http.get("/payments/pix", params=params, headers=server.auth)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append([c["id"] for c in body["data"]])
        if len(pages) == 1:
            # A charge made while paging is newer than the cursor: it shifts nothing.
            server.create_charge("2.00")
        if body["next_cursor"] is None:
            break
        assert isinstance(body["next_cursor"], str)
        params["cursor"] = body["next_cursor"]
        assert len(pages) < 10, "the cursor does not advance"
    assert [len(p) for p in pages] == [10, 10, 5]
    flat = [i for p in pages for i in p]
    assert flat == everything


def test_list_rejects_bad_parameters(shared_server: Server) -> None:
    url = shared_server.url + "/payments/pix"
    for params in ({"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"status": "ATIVA"}):
        assert_error(shared_server.http.get(url, params=params, headers=shared_server.auth), 422)
    for cursor in ("!!!", "bm90IGEgY3Vyc29y", "x" * 201):
        answer = shared_server.http.get(url, params={"cursor": cursor}, headers=shared_server.auth)
        assert answer.status_code in (400, 422)
        assert_error(answer, answer.status_code)


# Cancel --------------------------------------------------------------------------------


def test_cancel_then_cancel_again(shared_server: Server) -> None:
    charge = shared_server.create_charge("5.00")
    url = f"{shared_server.url}/payments/pix/{charge['id']}/cancel"
    first = shared_server.http.post(url, headers=shared_server.auth)
    assert first.status_code == 200, first.text
    cancelled = first.json()
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["id"] == charge["id"]
    assert cancelled["last_event_id"] > charge["last_event_id"]
    assert shared_server.charge(charge["id"])["status"] == "CANCELLED"

    assert_error(shared_server.http.post(url, headers=shared_server.auth), 409)
    assert shared_server.charge(charge["id"])["last_event_id"] == cancelled["last_event_id"]


def test_cancel_of_a_paid_charge_is_a_conflict(shared_server: Server) -> None:
    charge = shared_server.create_charge("5.00")
    assert shared_server.pay(charge["id"], "5.00").json()["results"][0]["outcome"] == "paid"
    paid = shared_server.charge(charge["id"])
    answer = shared_server.http.post(
        f"{shared_server.url}/payments/pix/{charge['id']}/cancel", headers=shared_server.auth
    )
    assert_error(answer, 409)
    assert shared_server.charge(charge["id"]) == paid


# Idempotency-Key -----------------------------------------------------------------------


def test_idempotency_key(shared_server: Server) -> None:
    url = shared_server.url + "/payments/pix"
    body = {"value": "7.77", "description": "idem", "metadata": {"order": "1"}}
    headers = {**shared_server.auth, "Idempotency-Key": "order-1-attempt"}
    before = len(shared_server.charges())

    first = shared_server.http.post(url, json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert len(shared_server.charges()) == before + 1

    again = shared_server.http.post(url, json=body, headers=headers)
    assert again.status_code in (200, 201), again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["value"] == "7.77"

    other = shared_server.http.post(url, json={**body, "value": "7.78"}, headers=headers)
    assert_error(other, 409)
    assert len(shared_server.charges()) == before + 1

    # Another key is another request.
    fresh = shared_server.http.post(
        url, json=body, headers={**shared_server.auth, "Idempotency-Key": "k2"}
    )
    assert fresh.status_code == 201
    assert fresh.json()["id"] != first.json()["id"]
    assert len(shared_server.charges()) == before + 2

    # Without the header, each POST is a new charge.
    plain = [shared_server.http.post(url, json=body, headers=shared_server.auth) for _ in range(2)]
    assert plain[0].json()["id"] != plain[1].json()["id"]

    # The replay still answers after the charge has changed: it is that same charge.
    shared_server.http.post(f"{url}/{first.json()['id']}/cancel", headers=shared_server.auth)
    replay = shared_server.http.post(url, json=body, headers=headers)
    assert replay.json()["id"] == first.json()["id"]
    assert replay.json()["status"] == "CANCELLED"


def test_idempotency_keys_belong_to_one_api_key(shared_server: Server) -> None:
    made = shared_server.cli("apikey", "create", "second-merchant-key")
    assert made.returncode == 0, made.stderr
    other_key = made.stdout.strip().splitlines()[-1]
    url = shared_server.url + "/payments/pix"
    body = {"value": "1.50"}
    mine = shared_server.http.post(
        url, json=body, headers={**shared_server.auth, "Idempotency-Key": "shared"}
    )
    theirs = shared_server.http.post(
        url,
        json=body,
        headers={"Authorization": f"Bearer {other_key}", "Idempotency-Key": "shared"},
    )
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


def test_idempotency_key_too_long(shared_server: Server) -> None:
    before = len(shared_server.charges())
    answer = shared_server.http.post(
        "/payments/pix",
        json={"value": "1.00"},
        headers={**shared_server.auth, "Idempotency-Key": "k" * 256},
    )
    assert_error(answer, 422)
    assert len(shared_server.charges()) == before


def test_an_empty_idempotency_key_is_refused_not_taken_as_a_key(shared_server: Server) -> None:
    """`Idempotency-Key: $KEY` with KEY unset: were it a key, the second charge of every
    such client would be the first one replayed."""
    before = len(shared_server.charges())
    for _ in range(2):
        answer = shared_server.http.post(
            "/payments/pix",
            json={"value": "1.00"},
            headers={**shared_server.auth, "Idempotency-Key": ""},
        )
        assert_error(answer, 422, "invalid_request")
        assert "Idempotency-Key" in answer.json()["error"]["message"]
    assert len(shared_server.charges()) == before


def test_a_json_body_sent_as_a_form_is_told_apart(shared_server: Server) -> None:
    """`curl -d '{...}'` sends a form's Content-Type: the answer says what to do."""
    before = len(shared_server.charges())
    answer = shared_server.http.post(
        "/payments/pix",
        content=b'{"value": "12.34"}',
        headers={**shared_server.auth, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(answer, 415, "unsupported_media_type")
    assert "application/json" in answer.json()["error"]["message"]
    assert len(shared_server.charges()) == before

    # Nor is a body without any Content-Type.
    bare = shared_server.http.post(
        "/payments/pix",
        content=b'{"value": "12.34"}',
        headers=shared_server.auth,
    )
    assert_error(bare, 415, "unsupported_media_type")
    assert len(shared_server.charges()) == before
