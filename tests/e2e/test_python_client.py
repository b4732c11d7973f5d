"""The Python client (clients/python, package pixlive-client) against a real server."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import standardwebhooks
from pixlive_client import (
    AsyncPixlive,
    PaymentNotCompleted,
    Pixlive,
    PixliveError,
    WebhookVerificationError,
    verify_webhook,
)

from pixlive.domain.webhook_signing import new_secret, signed_headers
from tests.e2e.conftest import Server
from tests.e2e.test_merchant_webhooks import register
from tests.e2e.webhook_receiver import receiver


def test_charges_created_read_listed_and_cancelled(shared_server: Server) -> None:
    with Pixlive(shared_server.url, shared_server.api_key) as pix:
        charge = pix.create_charge("7.50", description="Pedido", metadata={"order": "9"})
        assert charge.status == "ACTIVE" and charge.value == "7.50"
        assert pix.get_charge(charge.id).metadata == {"order": "9"}
        assert charge.id in [c.id for c in pix.list_charges(status="ACTIVE", limit=100).data]
        assert pix.cancel_charge(charge.id).status == "CANCELLED"
        with pytest.raises(PixliveError) as refused:
            pix.cancel_charge(charge.id)
        assert refused.value.status == 409
        with pytest.raises(PaymentNotCompleted):
            pix.wait_for_payment(charge.id, timeout=10)
        again = pix.create_charge("1.00", idempotency_key="k-1")
        assert pix.create_charge("1.00", idempotency_key="k-1").id == again.id
    with Pixlive(shared_server.url, "not-a-key") as wrong, pytest.raises(PixliveError) as exc:
        wrong.list_charges()
    assert exc.value.status == 401 and exc.value.code == "unauthorized"


def test_wait_for_payment_returns_the_paid_charge(shared_server: Server) -> None:
    with Pixlive(shared_server.url, shared_server.api_key) as pix:
        charge = pix.create_charge("3.21")
        payer = threading.Timer(0.2, lambda: shared_server.pay(charge.id, "3.21"))
        payer.start()
        try:
            paid = pix.wait_for_payment(charge.id, timeout=30)
        finally:
            payer.join()
        assert paid.status == "PAID" and paid.paid_at
        assert pix.wait_for_payment(charge.id, timeout=5).status == "PAID"  # already paid
        unpaid = pix.create_charge("1.00")
        with pytest.raises(TimeoutError):
            pix.wait_for_payment(unpaid.id, timeout=0.5)


async def test_async_client_and_the_merchant_stream(shared_server: Server) -> None:
    async with AsyncPixlive(shared_server.url, shared_server.api_key) as pix:
        charge = await pix.create_charge("4.56", metadata={"order": "async"})
        await asyncio.to_thread(shared_server.pay, charge.id, "4.56")
        # From the charge's creation on: the stream resumes after that event id.
        created = charge.last_event_id
        events = pix.events(after=created - 1, types={"payment.paid"})
        event = await asyncio.wait_for(anext(events), 30)
        await events.aclose()
        assert event.type == "payment.paid" and event.payment_id == charge.id
        assert (await pix.get_charge(charge.id)).status == "PAID"
        assert (await pix.wait_for_payment(charge.id, timeout=5)).status == "PAID"
        listed = await pix.list_charges(limit=5)
        assert listed.data and all(c.id for c in listed.data)


def test_verify_webhook_accepts_pixlives_own_deliveries(shared_server: Server) -> None:
    with receiver() as hook:
        endpoint = register(shared_server, hook.url, events=["payment.created"])
        hook.secrets = [endpoint["secret"]]
        with Pixlive(shared_server.url, shared_server.api_key) as pix:
            pix.create_charge("2.00")
        got = hook.wait_for(lambda seen: any(r.verified for r in seen))[-1]
        event = verify_webhook(got.body, got.headers, endpoint["secret"])
        assert event["type"] == "payment.created"
        with pytest.raises(WebhookVerificationError):
            verify_webhook(got.body + b" ", got.headers, endpoint["secret"])
        with pytest.raises(WebhookVerificationError):
            verify_webhook(got.body, got.headers, new_secret())
        shared_server.http.delete(
            f"/webhook-endpoints/{endpoint['id']}", headers=shared_server.auth
        )


def test_verify_webhook_agrees_with_the_standard_webhooks_library() -> None:
    secret, other = new_secret(), new_secret()
    body = b'{"type":"payment.paid","timestamp":"2026-12-02T00:00:00.000Z","data":{}}'
    now = int(time.time())
    headers = signed_headers([other, secret], "evt_9", now, body)  # a rotation's two
    assert verify_webhook(body, headers, secret) == standardwebhooks.Webhook(secret).verify(
        body, headers
    )
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, signed_headers([secret], "evt_9", now - 301, body), secret)
    assert verify_webhook(
        body, signed_headers([secret], "evt_9", now - 301, body), secret, tolerance=600
    )
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, {"webhook-id": "evt_9"}, secret)
