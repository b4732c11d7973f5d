"""`pixlive serve --tls-cert --tls-key --client-ca`: the API Pix's mutual TLS, end to end.

The PSP presents a client certificate signed by the CA it registered with the merchant;
pixlive refuses every connection that does not, before any HTTP is read.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from websockets.asyncio.client import connect

from pixlive.services.psp import new_end_to_end_id, signed_headers, webhook_body
from tests.e2e.conftest import Server, start_server
from tests.e2e.streams import ws_messages


@dataclass
class Pki:
    server_ca: Any  # signs the server's certificate (what clients trust)
    psp_ca: Any  # signs the PSP's client certificates (--client-ca)
    other_ca: Any  # someone else's CA
    dir: Path

    def client_context(self, client_ca: Any | None) -> ssl.SSLContext:
        """Trusts the server; presents a client certificate of `client_ca` (or none)."""
        context = ssl.create_default_context()
        self.server_ca.configure_trust(context)
        if client_ca is not None:
            client_ca.issue_cert("psp.example").configure_cert(context)
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    where = tmp_path_factory.mktemp("pki")
    pki = Pki(trustme.CA(), trustme.CA(), trustme.CA(), where)
    server_cert = pki.server_ca.issue_cert("127.0.0.1", "localhost")
    server_cert.cert_chain_pems[0].write_to_path(where / "cert.pem")
    for extra in server_cert.cert_chain_pems[1:]:
        extra.write_to_path(where / "cert.pem", append=True)
    server_cert.private_key_pem.write_to_path(where / "key.pem")
    pki.psp_ca.cert_pem.write_to_path(where / "psp-ca.pem")
    return pki


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("mtls") / "server",
        serve_args=(
            "--tls-cert",
            str(pki.dir / "cert.pem"),
            "--tls-key",
            str(pki.dir / "key.pem"),
            "--client-ca",
            str(pki.dir / "psp-ca.pem"),
        ),
        client_options={"verify": pki.client_context(pki.psp_ca)},
    )
    try:
        yield running
    finally:
        running.stop()


def _signed(payment_id: str, e2e: str, secret: str) -> tuple[bytes, dict[str, str]]:
    body = webhook_body(payment_id, "12.34", e2e)
    return body, signed_headers(secret, body)


def test_a_psp_with_a_certificate_of_the_ca_is_heard(mtls_server: Server) -> None:
    assert mtls_server.url.startswith("https://")
    charge = mtls_server.create_charge("12.34")
    assert charge["payment_url"].startswith("https://")
    e2e = new_end_to_end_id()
    answer = mtls_server.pay(charge["id"], "12.34", e2e)
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"] == [
        {"endToEndId": e2e, "outcome": "paid", "payment_id": charge["id"]}
    ]
    paid = mtls_server.charge(charge["id"])
    assert (paid["status"], paid["end_to_end_id"]) == ("PAID", e2e)
    # The signature is still checked behind the TLS: a certificate alone is not enough.
    unsigned = webhook_body(charge["id"], "12.34")
    refused = mtls_server.http.post(
        "/payments/pix/confirmation",
        content=unsigned,
        headers={"Content-Type": "application/json"},
    )
    assert refused.status_code == 401, refused.text


def _refused(url: str, verify: ssl.SSLContext | bool, body: bytes, headers: dict[str, str]) -> None:
    with httpx.Client(verify=verify, timeout=10) as client, pytest.raises(httpx.TransportError):
        client.post(url + "/payments/pix/confirmation", content=body, headers=headers)


@pytest.mark.parametrize("who", ["no certificate", "another CA", "the server's own CA"])
def test_a_client_without_a_certificate_of_the_ca_is_refused(
    mtls_server: Server, pki: Pki, who: str
) -> None:
    client_ca = {
        "no certificate": None,
        "another CA": pki.other_ca,
        "the server's own CA": pki.server_ca,
    }[who]
    charge = mtls_server.create_charge("12.34")
    before = mtls_server.charge(charge["id"])
    e2e = new_end_to_end_id()
    body, headers = _signed(charge["id"], e2e, mtls_server.secret)
    # A correct signature does not get it past the handshake.
    _refused(mtls_server.url, pki.client_context(client_ca), body, headers)
    # Nothing reached the application: the charge is as it was, the Pix not in the ledger.
    assert mtls_server.charge(charge["id"]) == before
    body, headers = _signed(charge["id"], e2e, mtls_server.secret)
    answer = mtls_server.http.post("/payments/pix/confirmation", content=body, headers=headers)
    assert answer.json()["results"][0]["outcome"] == "paid"


def test_plain_http_on_the_tls_port_fails(mtls_server: Server) -> None:
    charge = mtls_server.create_charge("12.34")
    body, headers = _signed(charge["id"], new_end_to_end_id(), mtls_server.secret)
    plain = mtls_server.url.replace("https://", "http://")
    with httpx.Client(timeout=10) as client, pytest.raises(httpx.TransportError):
        client.post(plain + "/payments/pix/confirmation", content=body, headers=headers)
    assert mtls_server.charge(charge["id"])["status"] == "ACTIVE"


def test_every_route_needs_the_certificate(mtls_server: Server, pki: Pki) -> None:
    """`--client-ca` guards the whole listener, the payer's page included: see
    docs/security.md for serving the page and the webhook on separate listeners."""
    charge = mtls_server.create_charge("12.34")
    with httpx.Client(verify=pki.client_context(None), timeout=10) as client:
        for path in ("/healthz", f"/payments/pix/{charge['id']}"):
            with pytest.raises(httpx.TransportError):
                client.get(mtls_server.url + path)


async def test_the_live_stream_works_over_tls(mtls_server: Server, pki: Pki) -> None:
    charge = mtls_server.create_charge("12.34")
    url = mtls_server.url.replace("https://", "wss://") + f"/payments/pix/{charge['id']}/ws"
    async with connect(url, ssl=pki.client_context(pki.psp_ca), open_timeout=10) as conn:
        (snapshot,) = await ws_messages(conn, 1)
        assert snapshot["payment"]["status"] == "ACTIVE"
        body, headers = _signed(charge["id"], new_end_to_end_id(), mtls_server.secret)
        async with httpx.AsyncClient(verify=pki.client_context(pki.psp_ca), timeout=10) as client:
            answer = await client.post(
                mtls_server.url + "/payments/pix/confirmation", content=body, headers=headers
            )
        assert answer.status_code == 200, answer.text
        (event,) = await ws_messages(conn, 1)
    assert (event["type"], event["payment_id"]) == ("payment.paid", charge["id"])
