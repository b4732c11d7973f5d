"""PIXLIVE_PSP=apipix against `pixlive psp-emulator`, both real processes on free ports,
every hop over mTLS: pixlive → PSP with the merchant's certificate, PSP → pixlive's webhook
with the PSP's."""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, assert_error, start_server
from tests.e2e.psp import PspEmulator, start_emulator
from tests.e2e.test_psp_emulator import crc_ok, tlv


@dataclass
class Pair:
    psp: PspEmulator
    server: Server

    def cob(self, txid: str) -> dict[str, Any]:
        answer = self.psp.http.get(
            f"{self.psp.api_url}/cob/{txid}",
            headers={"Authorization": f"Bearer {self.psp.token()}"},
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def create(self, value: str = "12.34", key: str | None = None, **fields: Any) -> httpx.Response:
        headers = dict(self.server.auth)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.server.http.post(
            "/payments/pix", json={"value": value, **fields}, headers=headers
        )

    def events_after(self, payment_id: str, after: int) -> list[dict[str, Any]]:
        answer = self.server.http.get(
            f"/payments/pix/{payment_id}/poll", params={"after": after, "timeout": 20}
        )
        assert answer.status_code == 200, answer.text
        return list(answer.json()["events"])

    def merchant_events(self, payment_id: str, after: int, count: int) -> list[str]:
        """The types of the first `count` events of the charge on the merchant's SSE stream."""
        found: list[str] = []
        with self.server.http.stream(
            "GET", "/events", params={"after": after}, headers=self.server.auth, timeout=20
        ) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event.get("payment_id") == payment_id:
                        found.append(event["type"])
                        if len(found) == count:
                            return found
        return found


def client_context(psp: PspEmulator) -> ssl.SSLContext:
    """Reaches pixlive's listener, whose --client-ca is the PSP's CA: every client of this
    listener presents a certificate of that CA (here the PSP's own)."""
    return psp.psp_tls()


def start_pair(tmp: Any, profile: str = "standard", reconcile_seconds: str = "1") -> Pair:
    psp = start_emulator(tmp / "psp", profile=profile)
    d = psp.dir
    try:
        server = start_server(
            tmp / "server",
            serve_args=(
                "--tls-cert",
                str(d / "merchant-server.pem"),
                "--tls-key",
                str(d / "merchant-server.key"),
                "--client-ca",
                str(d / "ca.pem"),
            ),
            client_options={"verify": client_context(psp)},
            PIXLIVE_RECONCILE_SECONDS=reconcile_seconds,
            **psp.settings,
        )
    except BaseException:
        psp.stop()
        raise
    registered = server.cli("psp", "webhook", "register")
    assert registered.returncode == 0, registered.stderr
    return Pair(psp, server)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    running = start_pair(tmp_path_factory.mktemp("apipix"))
    try:
        yield running
    finally:
        running.server.stop()
        running.psp.stop()


def test_a_charge_is_a_cob_with_the_psps_dynamic_code(pair: Pair) -> None:
    created = pair.create(
        "25.00",
        description="Pedido 1234",
        expires_in=600,
        payer={"name": "Fulana de Tal", "cpf": "12345678909"},
    )
    assert created.status_code == 201, created.text
    charge = created.json()
    assert 26 <= len(charge["id"]) <= 35  # the id is the cob's txid
    cob = pair.cob(charge["id"])
    assert cob["status"] == "ATIVA" and cob["valor"]["original"] == "25.00"
    assert cob["solicitacaoPagador"] == "Pedido 1234"
    assert cob["devedor"] == {"cpf": "12345678909", "nome": "Fulana de Tal"}
    assert cob["calendario"]["expiracao"] == 600
    code = charge["pix_copia_e_cola"]
    assert code == cob["pixCopiaECola"]
    assert crc_ok(code)
    account = tlv(tlv(code[:-8])["26"])
    assert account["25"] == cob["location"] and "01" not in account  # dynamic
    qr = pair.server.http.get(f"/payments/pix/{charge['id']}/qrcode.svg")
    assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg")


def test_paid_with_the_payers_app_confirmed_by_the_psps_webhook(pair: Pair) -> None:
    charge = pair.create("9.90").json()
    paid = pair.psp.pay(charge["pix_copia_e_cola"])
    assert paid.returncode == 0, paid.stderr
    events = pair.events_after(charge["id"], charge["last_event_id"])
    assert [e["type"] for e in events] == ["payment.paid"], events
    assert events[0]["status"] == "PAID"
    read = pair.server.charge(charge["id"])
    assert read["status"] == "PAID" and read["end_to_end_id"].startswith("E")
    assert pair.cob(charge["id"])["status"] == "CONCLUIDA"
    assert pair.merchant_events(charge["id"], charge["last_event_id"] - 1, 2) == [
        "payment.created",
        "payment.paid",
    ]


def test_cancel_removes_the_cob_first(pair: Pair) -> None:
    charge = pair.create().json()
    cancelled = pair.server.http.post(
        f"/payments/pix/{charge['id']}/cancel", headers=pair.server.auth
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    assert pair.cob(charge["id"])["status"] == "REMOVIDA_PELO_USUARIO_RECEBEDOR"
    again = pair.server.http.post(f"/payments/pix/{charge['id']}/cancel", headers=pair.server.auth)
    assert_error(again, 409, "charge_final")
    assert pair.psp.pay(charge["pix_copia_e_cola"]).returncode == 1


def test_a_token_that_expired_early_is_fetched_again_once(pair: Pair) -> None:
    assert pair.create().status_code == 201  # a token is cached
    before = pair.psp.stats()["tokens_issued"]
    assert pair.psp.http.post(pair.psp.origin + "/_emulator/expire-tokens").status_code == 200
    created = pair.create()
    assert created.status_code == 201, created.text
    assert pair.create().status_code == 201
    assert pair.psp.stats()["tokens_issued"] == before + 1


def test_the_psp_down_gets_503_and_a_retry_makes_one_cob_and_one_charge(pair: Pair) -> None:
    key = str(uuid.uuid4())
    charges_before = len(pair.server.charges())
    cobs_before = pair.psp.stats()["cobs"]
    pair.psp.knobs(down=True)
    try:
        refused = pair.create("4.20", key=key)
    finally:
        pair.psp.knobs(down=False)
    assert_error(refused, 503, "psp_unavailable")
    assert len(pair.server.charges()) == charges_before  # nothing the PSP does not know
    assert pair.psp.stats()["cobs"] == cobs_before
    first = pair.create("4.20", key=key)
    assert first.status_code == 201, first.text
    again = pair.create("4.20", key=key)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert len(pair.server.charges()) == charges_before + 1
    assert pair.psp.stats()["cobs"] == cobs_before + 1


def test_the_webhook_registered_by_the_cli_is_shown(pair: Pair) -> None:
    shown = pair.server.cli("psp", "webhook", "show")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"{pair.server.url}/payments/pix/confirmation"


def test_a_dropped_webhook_is_found_by_the_sweep_once(pair: Pair) -> None:
    charge = pair.create("3.33").json()
    pair.psp.knobs(drop=1.0)
    try:
        assert pair.psp.pay(charge["pix_copia_e_cola"]).returncode == 0
        # The server sweeps every second (PIXLIVE_RECONCILE_SECONDS=1): the long poll
        # returns at its first event.
        events = pair.events_after(charge["id"], charge["last_event_id"])
    finally:
        pair.psp.knobs(drop=0.0)
    assert pair.psp.stats()["deliveries"]["dropped"] >= 1
    assert [e["type"] for e in events] == ["payment.paid"], events
    assert events[0]["data"]["source"] == "reconciliation"
    # By hand, over the same window: everything is in the ledger already, nothing changes.
    swept = pair.server.cli("psp", "reconcile", "--since", charge["created_at"])
    assert swept.returncode == 0, swept.stderr
    assert "0 that no webhook had brought" in swept.stdout, swept.stdout
    assert pair.merchant_events(charge["id"], charge["last_event_id"] - 1, 2) == [
        "payment.created",
        "payment.paid",
    ]
    later = pair.server.http.get(
        f"/payments/pix/{charge['id']}/poll", params={"after": events[0]["id"], "timeout": 0}
    )
    assert later.json()["events"] == []


@pytest.mark.parametrize("profile", ["efi", "inter"])
def test_the_profiles_end_to_end(tmp_path: Any, profile: str) -> None:
    running = start_pair(tmp_path, profile=profile, reconcile_seconds="0")
    try:
        charge = running.create("1.50").json()
        assert running.psp.pay(charge["pix_copia_e_cola"]).returncode == 0
        events = running.events_after(charge["id"], charge["last_event_id"])
        assert [e["type"] for e in events] == ["payment.paid"]
        body = running.psp.stats()["deliveries"]["bodies"][-1]
        # inter's emulation sends the Pix as a root array; efi as the spec's {"pix": [...]}
        assert isinstance(body, list) == (profile == "inter")
    finally:
        running.server.stop()
        running.psp.stop()
