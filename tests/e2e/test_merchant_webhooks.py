"""Merchant webhooks end to end: a real server delivering to real receivers on loopback,
each request verified with the Standard Webhooks library from PyPI."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server, assert_error, start_server
from tests.e2e.webhook_receiver import Received, receiver
from tests.webhook_schemas import validate

# The schedule shrunk 10,000 times (sandbox only): 0, 0.5 ms, 30 ms, 180 ms, 0.72 s, ...
FAST = {"PIXLIVE_WEBHOOK_RETRY_SCALE": "0.0001"}


def register(server: Server, url: str, **fields: Any) -> dict[str, Any]:
    answer = server.http.post(
        "/webhook-endpoints", json={"url": url, **fields}, headers=server.auth
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def deliveries(server: Server, endpoint_id: str) -> list[dict[str, Any]]:
    answer = server.http.get(
        f"/webhook-endpoints/{endpoint_id}/deliveries", params={"limit": 100}, headers=server.auth
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


def settled(server: Server, endpoint_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The endpoint's deliveries once `count` of them are final (the receiver may have
    answered before the server recorded it)."""
    deadline = time.monotonic() + 30
    while True:
        found = deliveries(server, endpoint_id)
        if sum(d["status"] != "pending" for d in found) >= count:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.02)


@pytest.fixture
def fast_server(tmp_path: Path) -> Any:
    running = start_server(tmp_path / "server", **FAST)
    try:
        yield running
    finally:
        running.stop()


def test_a_paid_charge_reaches_the_endpoint_signed_with_its_metadata(server: Server) -> None:
    with receiver() as hook:
        endpoint = register(server, hook.url, events=["payment.paid"], description="orders")
        assert endpoint["secret"].startswith("whsec_")
        hook.secrets = [endpoint["secret"]]
        charge = server.create_charge("12.34", metadata={"order": "A-17"})
        assert server.pay(charge["id"]).status_code == 200
        (got,) = hook.wait_count(1)
        assert got.verified, got.headers
        body = got.json
        validate(body)
        assert body["type"] == "payment.paid"
        assert body["data"]["payment_id"] == charge["id"]
        assert body["data"]["charge"]["metadata"] == {"order": "A-17"}
        assert body["data"]["charge"]["status"] == "PAID"
        assert got.webhook_id == f"evt_{body['data']['event_id']}"
        # payment.created was not asked for
        assert all(r.json["type"] == "payment.paid" for r in hook.received)
        (logged,) = settled(server, endpoint["id"])
        assert logged["status"] == "succeeded"
        assert logged["webhook_id"] == got.webhook_id
        (attempt,) = logged["attempts"]
        assert attempt["status_code"] == 200 and attempt["response"] == "ok"
        # the secret is shown once
        shown = server.http.get(f"/webhook-endpoints/{endpoint['id']}", headers=server.auth)
        assert shown.json()["secret"] is None


def test_the_first_three_attempts_fail_and_the_fourth_arrives_with_the_same_id(
    fast_server: Server,
) -> None:
    def flaky(number: int, received: Received) -> tuple[int, dict[str, str], bytes]:
        return (500, {}, b"down") if number <= 3 else (204, {}, b"")

    with receiver(flaky) as hook:
        endpoint = register(fast_server, hook.url, events=["payment.paid"])
        hook.secrets = [endpoint["secret"]]
        charge = fast_server.create_charge()
        fast_server.pay(charge["id"])
        seen = hook.wait_count(4)
        assert len({r.webhook_id for r in seen}) == 1
        assert all(r.verified for r in seen)
        (logged,) = settled(fast_server, endpoint["id"])
        codes = [a["status_code"] for a in logged["attempts"]]
        assert codes == [500, 500, 500, 204]
        assert logged["status"] == "succeeded"


def test_410_disables_the_endpoint_after_one_attempt(fast_server: Server) -> None:
    with (
        receiver(lambda n, r: (410, {}, b"gone")) as gone,
        receiver() as other,
    ):
        endpoint = register(fast_server, gone.url)
        watcher = register(
            fast_server, other.url, events=["webhook_endpoint.disabled", "payment.paid"]
        )
        other.secrets = [watcher["secret"]]
        charge = fast_server.create_charge()
        (notice,) = other.wait_count(1)
        assert notice.verified
        assert notice.json["type"] == "webhook_endpoint.disabled"
        validate(notice.json)
        assert notice.json["data"]["endpoint_id"] == endpoint["id"]
        assert notice.json["data"]["reason"] == "gone"
        shown = fast_server.http.get(
            f"/webhook-endpoints/{endpoint['id']}", headers=fast_server.auth
        ).json()
        assert shown["enabled"] is False and shown["disabled_reason"] == "gone"
        # Paid after that: the other endpoint hears of it, the disabled one does not.
        fast_server.pay(charge["id"])
        other.wait_for(lambda seen: any(r.json["type"] == "payment.paid" for r in seen))
        assert len(gone.received) == 1
        (logged,) = settled(fast_server, endpoint["id"])
        assert logged["status"] == "cancelled"
        assert [a["status_code"] for a in logged["attempts"]] == [410]


def test_rotation_signs_with_both_secrets_during_the_overlap(server: Server) -> None:
    with receiver() as hook:
        endpoint = register(server, hook.url, events=["payment.created"])
        rotated = server.http.post(
            f"/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=server.auth
        )
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret != endpoint["secret"]
        hook.secrets = [endpoint["secret"], new_secret]  # each must verify on its own
        server.create_charge()
        (got,) = hook.wait_count(1)
        assert got.verified
        assert len(got.headers["webhook-signature"].split(" ")) == 2


def test_an_endpoint_can_be_listed_changed_and_deleted(server: Server) -> None:
    endpoint = register(server, "http://127.0.0.1:9/hooks")
    listed = server.http.get("/webhook-endpoints", headers=server.auth).json()["data"]
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert listed[0]["secret"] is None
    changed = server.http.patch(
        f"/webhook-endpoints/{endpoint['id']}",
        json={"events": ["payment.paid"], "enabled": False},
        headers=server.auth,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["payment.paid"]
    assert changed.json()["enabled"] is False
    assert (
        server.http.delete(f"/webhook-endpoints/{endpoint['id']}", headers=server.auth).status_code
        == 204
    )
    assert_error(
        server.http.get(f"/webhook-endpoints/{endpoint['id']}", headers=server.auth),
        404,
        "not_found",
    )


def test_bad_endpoints_are_refused_and_change_nothing(server: Server) -> None:
    assert_error(server.http.post("/webhook-endpoints", json={"url": "http://127.0.0.1:9/"}), 401)
    for body, code in (
        ({"url": "ftp://example.com/"}, "invalid_url"),
        ({"url": "http://127.0.0.1:9/", "events": ["payment.nope"]}, "invalid_events"),
        ({"url": "http://127.0.0.1:9/", "events": []}, "invalid_events"),
    ):
        assert_error(
            server.http.post("/webhook-endpoints", json=body, headers=server.auth), 422, code
        )
    assert server.http.get("/webhook-endpoints", headers=server.auth).json()["data"] == []


def test_production_refuses_an_endpoint_on_loopback(tmp_path: Path) -> None:
    running = start_server(
        tmp_path / "prod",
        PIXLIVE_ENV="production",
        PIXLIVE_PIX_KEY="loja@example.com",
        PIXLIVE_MERCHANT_NAME="Loja",
        PIXLIVE_MERCHANT_CITY="Sao Paulo",
    )
    try:
        for url in ("https://127.0.0.1/hooks", "https://localhost:8443/x", "http://example.com/"):
            answer = running.http.post(
                "/webhook-endpoints", json={"url": url}, headers=running.auth
            )
            assert_error(answer, 422, "invalid_url")
        assert running.http.get("/webhook-endpoints", headers=running.auth).json()["data"] == []
    finally:
        running.stop()


def test_events_are_listed_redelivered_and_replayed(server: Server) -> None:
    with receiver() as hook:
        endpoint = register(server, hook.url)
        hook.secrets = [endpoint["secret"]]
        charge = server.create_charge(metadata={"order": "B-2"})
        server.pay(charge["id"])
        first = hook.wait_count(2)  # created, paid
        assert all(r.verified for r in first)

        json_accept = {**server.auth, "accept": "application/json"}
        listed = server.http.get("/events", params={"type": "payment.paid"}, headers=json_accept)
        assert listed.status_code == 200, listed.text
        (paid,) = listed.json()["data"]
        assert paid["payment_id"] == charge["id"] and paid["type"] == "payment.paid"
        both = server.http.get(
            "/events", params={"payment_id": charge["id"], "limit": 1}, headers=json_accept
        ).json()
        assert [e["type"] for e in both["data"]] == ["payment.paid"]  # newest first
        older = server.http.get(
            "/events",
            params={"payment_id": charge["id"], "cursor": both["next_cursor"]},
            headers=json_accept,
        ).json()
        assert [e["type"] for e in older["data"]] == ["payment.created"]
        assert older["next_cursor"] is None
        assert_error(server.http.get("/events", params={"limit": 0}, headers=json_accept), 422)

        again = server.http.post(f"/events/{paid['id']}/redeliver", headers=server.auth)
        assert again.status_code == 202 and again.json() == {"queued": 1}
        third = hook.wait_count(3)[2]
        assert third.verified and third.webhook_id == f"evt_{paid['id']}"
        assert third.json["data"]["charge"]["metadata"] == {"order": "B-2"}

        replayed = server.http.post(
            f"/webhook-endpoints/{endpoint['id']}/replay",
            json={"since": "2020-01-01T00:00:00Z"},
            headers=server.auth,
        )
        assert replayed.status_code == 202 and replayed.json() == {"queued": 2}
        seen = hook.wait_count(5)
        assert {r.webhook_id for r in seen[3:]} == {r.webhook_id for r in first}
        kinds = sorted(d["kind"] for d in settled(server, endpoint["id"], 5))
        assert kinds == ["event", "event", "redeliver", "replay", "replay"]
        assert_error(server.http.post("/events/999999/redeliver", headers=server.auth), 404)


def test_every_delivered_body_is_as_docs_webhooks_md_shows(fast_server: Server) -> None:
    with receiver() as hook:
        endpoint = register(fast_server, hook.url)
        hook.secrets = [endpoint["secret"]]
        paid = fast_server.create_charge("5.00", metadata={"order": "1"}, description="x")
        fast_server.pay(paid["id"], "5.00")
        cancelled = fast_server.create_charge()
        fast_server.http.post(f"/payments/pix/{cancelled['id']}/cancel", headers=fast_server.auth)
        short = fast_server.create_charge("9.99")
        fast_server.pay(short["id"], "9.98")
        wanted = {"payment.created", "payment.paid", "payment.cancelled", "payment.mismatch"}
        seen = hook.wait_for(lambda got: wanted <= {r.json["type"] for r in got})
        for got in seen:
            assert got.verified
            validate(got.json)
