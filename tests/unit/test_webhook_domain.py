"""The pure parts of merchant webhooks: signing, the schedule, the delivery's state machine,
and which URLs and addresses a delivery may go to."""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks

from pixlive.domain.errors import IllegalTransition
from pixlive.domain.webhook_delivery import (
    FAILING_LIMIT,
    SCHEDULE,
    TRANSITIONS,
    Answer,
    DeliveryStatus,
    Outcome,
    check_delivery_transition,
    decide,
    retry_after,
    retry_wait,
)
from pixlive.domain.webhook_endpoint import ROTATION_OVERLAP, Endpoint
from pixlive.domain.webhook_signing import new_secret, signature, signed_headers
from pixlive.domain.webhook_url import RefusedUrl, UrlPolicy, check_url, is_public

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
PRODUCTION = UrlPolicy(https_only=True, public_only=True)
SANDBOX = UrlPolicy(https_only=False, public_only=False)


def answer(status: int | None, retry: str | None = None) -> Answer:
    return Answer(status, None if status else "refused", 3.0, "", retry)


# signing -------------------------------------------------------------------------------


def test_a_secret_is_whsec_and_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert new_secret() != secret


def test_the_signature_is_the_one_the_standard_webhooks_library_verifies() -> None:
    secret = new_secret()
    body = b'{"type":"payment.paid","timestamp":"2026-12-02T12:00:00.000Z","data":{}}'
    timestamp = int(datetime.now(UTC).timestamp())
    headers = signed_headers([secret], "evt_1", timestamp, body)
    assert standardwebhooks.Webhook(secret).verify(body, headers)["type"] == "payment.paid"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new_secret()).verify(body, headers)


def test_the_signature_matches_the_specifications_example() -> None:
    # The example of the Standard Webhooks specification (and its libraries' tests).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert (
        signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_during_a_rotation_both_secrets_sign() -> None:
    endpoint = Endpoint(
        "we_x", "https://example.com/h", None, None, True, new_secret(), None, None,
        NOW, NOW, 0,
    )  # fmt: skip
    rotated = endpoint.rotated(new_secret(), NOW)
    assert rotated.signing_secrets(NOW) == (rotated.secret, endpoint.secret)
    assert rotated.signing_secrets(NOW + ROTATION_OVERLAP) == (rotated.secret,)
    body = b"{}"
    headers = signed_headers(rotated.signing_secrets(NOW), "evt_2", int(NOW.timestamp()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2


# the schedule and the state machine ----------------------------------------------------


def test_the_schedule_is_the_documented_one_with_bounded_jitter() -> None:
    assert SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    for made in range(1, len(SCHEDULE)):
        low, high = retry_wait(made, lambda: 0.0), retry_wait(made, lambda: 0.999999)
        assert low is not None and high is not None
        assert SCHEDULE[made] * 0.9 <= low <= high <= SCHEDULE[made] * 1.1
    assert retry_wait(len(SCHEDULE), lambda: 0.5) is None


def test_only_2xx_succeeds() -> None:
    for code in (200, 201, 204, 299):
        decision = decide(
            attempts_made=1, answer=answer(code), now=NOW, failing_since=None, random=lambda: 0.5
        )
        assert decision.status is DeliveryStatus.SUCCEEDED
        assert decision.failing_since is None
    for code in (None, 199, 301, 400, 404, 500):
        decision = decide(
            attempts_made=1, answer=answer(code), now=NOW, failing_since=None, random=lambda: 0.5
        )
        assert decision.status is DeliveryStatus.PENDING
        assert decision.next_attempt_at == NOW + timedelta(seconds=5)
        assert decision.failing_since == NOW


def test_the_last_failure_exhausts_the_delivery() -> None:
    decision = decide(
        attempts_made=8, answer=answer(500), now=NOW, failing_since=NOW, random=lambda: 0.5
    )
    assert decision.status is DeliveryStatus.EXHAUSTED
    assert decision.next_attempt_at is None
    assert decision.disable_endpoint is None


def test_410_cancels_and_disables_the_endpoint() -> None:
    decision = decide(
        attempts_made=1, answer=answer(410), now=NOW, failing_since=None, random=lambda: 0.5
    )
    assert decision.outcome is Outcome.GONE
    assert decision.status is DeliveryStatus.CANCELLED
    assert decision.disable_endpoint == "gone"


def test_an_endpoint_failing_for_five_days_is_disabled() -> None:
    since = NOW - FAILING_LIMIT
    decision = decide(
        attempts_made=2, answer=answer(500), now=NOW, failing_since=since, random=lambda: 0.5
    )
    assert decision.disable_endpoint == "failing"
    assert decision.status is DeliveryStatus.CANCELLED
    recent = decide(
        attempts_made=2,
        answer=answer(500),
        now=NOW,
        failing_since=since + timedelta(minutes=1),
        random=lambda: 0.5,
    )
    assert recent.disable_endpoint is None and recent.status is DeliveryStatus.PENDING


def test_retry_after_is_honoured_on_429_and_503_only() -> None:
    for code in (429, 503):
        decision = decide(
            attempts_made=1,
            answer=answer(code, "120"),
            now=NOW,
            failing_since=None,
            random=lambda: 0.5,
        )
        assert decision.next_attempt_at == NOW + timedelta(seconds=120)
    ignored = decide(
        attempts_made=1, answer=answer(500, "120"), now=NOW, failing_since=None, random=lambda: 0.5
    )
    assert ignored.next_attempt_at == NOW + timedelta(seconds=5)
    assert retry_after("Wed, 02 Dec 2026 12:01:00 GMT", NOW) == 60
    assert retry_after("soon", NOW) is None
    assert retry_after("99999999", NOW) == 36000


def test_final_statuses_have_no_way_out() -> None:
    for status in DeliveryStatus:
        for target in DeliveryStatus:
            if target in TRANSITIONS[status]:
                check_delivery_transition(status, target)
            else:
                with pytest.raises(IllegalTransition):
                    check_delivery_transition(status, target)
    assert {s for s in DeliveryStatus if s.is_final} == {
        DeliveryStatus.SUCCEEDED,
        DeliveryStatus.EXHAUSTED,
        DeliveryStatus.CANCELLED,
    }


# URLs and addresses --------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # the clouds' metadata service
        "100.64.0.1",  # shared (CGNAT)
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00:ec2::254",  # AWS's IPv6 metadata service
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
def test_no_delivery_to_an_address_that_is_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(RefusedUrl):
        check_url(f"https://{host}/hooks", PRODUCTION)
    check_url(f"https://{host}/hooks", SANDBOX)  # the sandbox allows them


def test_public_addresses_and_names_pass_in_production() -> None:
    assert is_public(ipaddress.ip_address("8.8.8.8"))
    assert is_public(ipaddress.ip_address("2606:4700::1111"))
    assert check_url("https://8.8.8.8/hooks", PRODUCTION) == "8.8.8.8"
    assert check_url("https://shop.example.com:8443/hooks", PRODUCTION) == "shop.example.com"


@pytest.mark.parametrize(
    "url",
    [
        "http://shop.example.com/hooks",  # production: https only
        "https://localhost/hooks",
        "https://api.localhost/hooks",
        "ftp://shop.example.com/",
        "https:///nohost",
        "https://user:pass@shop.example.com/",
        "https://shop.example.com:99999/",
        "https://shop.example.com/" + "x" * 2048,
    ],
)
def test_production_refuses_these_urls(url: str) -> None:
    with pytest.raises(RefusedUrl):
        check_url(url, PRODUCTION)
