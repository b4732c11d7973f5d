"""Merchant webhooks through outages: a receiver down while payments happen, and pixlive
killed with SIGKILL in the middle of a retry schedule. Nothing is lost, nothing is sent
twice within an attempt; a receiver dedupes by webhook-id."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.e2e.conftest import Server, free_port, start_server
from tests.e2e.test_merchant_webhooks import register, settled
from tests.e2e.webhook_receiver import Received, Receiver, receiver

PAYMENTS = 500


def test_a_receiver_down_while_500_payments_happen_gets_them_all_when_back(
    tmp_path: Path,
) -> None:
    # The schedule shrunk 1,000 times: 0, 5 ms, 0.3 s, 1.8 s, 7.2 s, 18 s, 36 s, 36 s.
    server = start_server(tmp_path / "server", PIXLIVE_WEBHOOK_RETRY_SCALE="0.001")
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        one = register(server, base + "/one", events=["payment.paid"])
        two = register(server, base + "/two", events=["payment.paid"])
        state = Receiver(secrets_by_path={"/one": [one["secret"]], "/two": [two["secret"]]})
        charges = [server.create_charge() for _ in range(PAYMENTS)]
        with ThreadPoolExecutor(8) as pool:
            paid = list(pool.map(lambda c: server.pay(c["id"]).status_code, charges))
        assert paid == [200] * PAYMENTS
        with receiver(port=port, state=state):  # back up
            seen = state.wait_for(
                lambda got: len({(r.path, r.webhook_id) for r in got}) >= 2 * PAYMENTS, 120
            )
        assert all(r.verified for r in seen)
        by_endpoint = {
            path: {r.json["data"]["payment_id"] for r in seen if r.path == path}
            for path in ("/one", "/two")
        }
        expected = {c["id"] for c in charges}
        assert by_endpoint == {"/one": expected, "/two": expected}
        for endpoint in (one, two):
            logged = settled(server, endpoint["id"], 100)
            assert all(d["status"] == "succeeded" for d in logged)
    finally:
        server.stop()


def test_killed_in_the_middle_of_a_schedule_it_resumes_after_a_restart(tmp_path: Path) -> None:
    # Shrunk 100 times: 0, 50 ms, then 3 s before the third attempt.
    settings = {"PIXLIVE_WEBHOOK_RETRY_SCALE": "0.01"}
    workdir = tmp_path / "server"
    server = start_server(workdir, **settings)

    def flaky(number: int, received: Received) -> tuple[int, dict[str, str], bytes]:
        return (500, {}, b"not yet") if number <= 2 else (200, {}, b"ok")

    with receiver(flaky) as hook:
        endpoint = register(server, hook.url, events=["payment.paid"])
        hook.secrets = [endpoint["secret"]]
        charge = server.create_charge()
        server.pay(charge["id"])
        _wait_attempts(server, endpoint["id"], 2)
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
        restarted = start_server(
            workdir, port=int(server.url.rsplit(":", 1)[1]), api_key=server.api_key, **settings
        )
        try:
            (logged,) = settled(restarted, endpoint["id"])
            assert [a["status_code"] for a in logged["attempts"]] == [500, 500, 200]
            assert len(hook.received) == 3
            assert len({r.webhook_id for r in hook.received}) == 1
            assert all(r.verified for r in hook.received)
        finally:
            restarted.stop()


def _wait_attempts(server: Server, endpoint_id: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = server.http.get(
            f"/webhook-endpoints/{endpoint_id}/deliveries", headers=server.auth
        )
        found = answer.json()["data"]
        if found and len(found[0]["attempts"]) >= count:
            assert found[0]["status"] == "pending", found
            return
        time.sleep(0.01)
    raise AssertionError("the attempts were not recorded")
