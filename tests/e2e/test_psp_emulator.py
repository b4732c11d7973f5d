"""`pixlive psp-emulator`: a separate process over mTLS, its answers checked against the
API Pix specification's own schemas."""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from pixlive.emulator import jws
from tests.apipix_spec import validate
from tests.e2e.conftest import free_port
from tests.e2e.psp import PspEmulator, start_emulator


@pytest.fixture(scope="module")
def psp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PspEmulator]:
    emulator = start_emulator(tmp_path_factory.mktemp("psp"))
    try:
        yield emulator
    finally:
        emulator.stop()


def _txid() -> str:
    return "px" + secrets.token_hex(14)  # 30 chars of [a-z0-9]


def _auth(psp: PspEmulator, scope: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {psp.token(scope)}"}


def _cob(psp: PspEmulator, txid: str, valor: str = "12.34", **extra: Any) -> httpx.Response:
    body = {
        "calendario": {"expiracao": 3600},
        "valor": {"original": valor},
        "chave": psp.credentials["chave"],
        **extra,
    }
    return psp.http.put(f"{psp.api_url}/cob/{txid}", json=body, headers=_auth(psp))


def _problem(answer: httpx.Response, status: int, kind: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    validate(answer.json(), "Problema")
    assert answer.json()["type"].endswith("/" + kind), answer.json()


def tlv(text: str) -> dict[str, str]:
    """An independent reading of EMV TLV (not pixlive's parser): ID(2) LEN(2) VALUE."""
    out, i = {}, 0
    while i < len(text):
        tag, size = text[i : i + 2], int(text[i + 2 : i + 4])
        out[tag] = text[i + 4 : i + 4 + size]
        i += 4 + size
    return out


def crc_ok(code: str) -> bool:
    crc = 0xFFFF
    for byte in code[:-4].encode():
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return f"{crc:04X}" == code[-4:]


def test_oauth2_client_credentials_with_scopes(psp: PspEmulator) -> None:
    creds = psp.credentials
    good = psp.http.post(
        psp.token_url,
        data={"grant_type": "client_credentials", "scope": "cob.read"},
        auth=(creds["client_id"], creds["client_secret"]),
    )
    assert good.status_code == 200, good.text
    assert good.json()["token_type"] == "Bearer" and good.json()["scope"] == "cob.read"
    bad = psp.http.post(
        psp.token_url,
        data={"grant_type": "client_credentials"},
        auth=(creds["client_id"], "not-the-secret"),
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    txid = _txid()
    read_only = {"Authorization": f"Bearer {good.json()['access_token']}"}
    body = {"valor": {"original": "1.00"}, "chave": creds["chave"], "calendario": {}}
    denied = psp.http.put(f"{psp.api_url}/cob/{txid}", json=body, headers=read_only)
    _problem(denied, 403, "AcessoNegado")
    _problem(psp.http.get(f"{psp.api_url}/cob/{txid}"), 401, "AcessoNegado")
    _problem(
        psp.http.get(f"{psp.api_url}/cob/{txid}", headers={"Authorization": "Bearer nope"}),
        401,
        "AcessoNegado",
    )


def test_the_api_refuses_a_client_without_the_merchant_certificate(psp: PspEmulator) -> None:
    context = ssl.create_default_context(cafile=str(psp.dir / "ca.pem"))
    with pytest.raises(httpx.HTTPError):
        httpx.post(psp.token_url, verify=context, timeout=5)


def test_cob_put_get_patch_follow_the_spec(psp: PspEmulator) -> None:
    txid = _txid()
    created = _cob(
        psp,
        txid,
        solicitacaoPagador="Pedido 42",
        devedor={"cpf": "12345678909", "nome": "Fulana de Tal"},
    )
    assert created.status_code == 201, created.text
    validate(created.json(), "CobGerada")
    cob = created.json()
    assert cob["txid"] == txid and cob["status"] == "ATIVA" and cob["valor"]["original"] == "12.34"
    assert cob["solicitacaoPagador"] == "Pedido 42" and cob["devedor"]["nome"] == "Fulana de Tal"

    read = psp.http.get(f"{psp.api_url}/cob/{txid}", headers=_auth(psp))
    validate(read.json(), "CobCompleta")
    assert read.json()["pixCopiaECola"] == cob["pixCopiaECola"]

    _problem(_cob(psp, txid), 400, "CobOperacaoInvalida")  # the txid is taken
    _problem(_cob(psp, "a" * 25), 400, "CobOperacaoInvalida")  # 26 to 35 characters
    _problem(_cob(psp, _txid(), valor="12.3"), 400, "CobOperacaoInvalida")
    _problem(
        psp.http.get(f"{psp.api_url}/cob/{_txid()}", headers=_auth(psp)), 404, "CobNaoEncontrado"
    )

    removed = psp.http.patch(
        f"{psp.api_url}/cob/{txid}",
        json={"status": "REMOVIDA_PELO_USUARIO_RECEBEDOR"},
        headers=_auth(psp),
    )
    assert removed.status_code == 200, removed.text
    validate(removed.json(), "CobGerada")
    assert removed.json()["status"] == "REMOVIDA_PELO_USUARIO_RECEBEDOR"
    assert removed.json()["revisao"] == 1
    again = psp.http.patch(
        f"{psp.api_url}/cob/{txid}",
        json={"status": "REMOVIDA_PELO_USUARIO_RECEBEDOR"},
        headers=_auth(psp),
    )
    _problem(again, 400, "CobOperacaoInvalida")
    assert psp.pay(cob["pixCopiaECola"]).returncode == 1  # a removed charge cannot be paid


def test_the_dynamic_code_leads_to_a_signed_location(psp: PspEmulator) -> None:
    txid = _txid()
    cob = _cob(psp, txid, valor="7.50").json()
    code = cob["pixCopiaECola"]
    assert crc_ok(code)
    fields = tlv(code[:-8])
    account = tlv(fields["26"])
    assert account["00"] == "br.gov.bcb.pix"
    assert account["25"] == cob["location"]  # dynamic: the location, not a key
    assert "01" not in account
    assert tlv(fields["62"])["05"] == "***"
    assert fields["01"] == "12" and fields["54"] == "7.50"

    answer = httpx.get(f"https://{cob['location']}", verify=psp.merchant_tls(), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/jose")
    payload, cert = jws.verify(answer.text)
    assert jws.issued_by(cert, (psp.dir / "ca.pem").read_bytes())
    validate(payload, "CobPayload")
    assert payload["txid"] == txid and payload["valor"]["original"] == "7.50"
    tampered = answer.text.split(".")
    tampered[1] = tampered[1][:-2] + ("AA" if tampered[1][-2:] != "AA" else "BB")
    with pytest.raises(jws.JwsError):
        jws.verify(".".join(tampered))


def test_the_payer_pays_and_get_pix_pages_through_what_arrived(psp: PspEmulator) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    txids = [_txid() for _ in range(3)]
    for txid in txids:
        paid = psp.pay(_cob(psp, txid, valor="3.00").json()["pixCopiaECola"])
        assert paid.returncode == 0, paid.stderr
    later = psp.pay(_cob(psp, txids[0]).json().get("pixCopiaECola", "x"))
    assert later.returncode == 1  # the txid is taken: no cob, nothing to pay
    window = {
        "inicio": start.isoformat(),
        "fim": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
    }
    seen: list[dict[str, Any]] = []
    page = 0
    while True:
        answer = psp.http.get(
            f"{psp.api_url}/pix",
            params={**window, "paginacao.paginaAtual": page, "paginacao.itensPorPagina": 2},
            headers=_auth(psp),
        )
        assert answer.status_code == 200, answer.text
        validate(answer.json(), "PixConsultados")
        seen += answer.json()["pix"]
        if page + 1 >= answer.json()["parametros"]["paginacao"]["quantidadeDePaginas"]:
            break
        page += 1
    mine = [p for p in seen if p.get("txid") in txids]
    assert sorted(p["txid"] for p in mine) == sorted(txids)
    assert all(p["valor"] == "3.00" for p in mine)
    one = psp.http.get(f"{psp.api_url}/pix/{mine[0]['endToEndId']}", headers=_auth(psp))
    validate(one.json(), "Pix")
    cob = psp.http.get(f"{psp.api_url}/cob/{txids[0]}", headers=_auth(psp)).json()
    validate(cob, "CobCompleta")
    assert cob["status"] == "CONCLUIDA" and cob["pix"][0]["txid"] == txids[0]
    bad = psp.http.get(
        f"{psp.api_url}/pix",
        params={"inicio": "yesterday", "fim": window["fim"]},
        headers=_auth(psp),
    )
    _problem(bad, 400, "PixConsultaInvalida")


def test_devolucao_partial_then_full_then_refused(psp: PspEmulator) -> None:
    txid = _txid()
    assert psp.pay(_cob(psp, txid, valor="10.00").json()["pixCopiaECola"]).returncode == 0
    cob = psp.http.get(f"{psp.api_url}/cob/{txid}", headers=_auth(psp)).json()
    e2e = cob["pix"][0]["endToEndId"]
    url = f"{psp.api_url}/pix/{e2e}/devolucao"
    first = psp.http.put(f"{url}/d1", json={"valor": "4.00"}, headers=_auth(psp))
    assert first.status_code == 201, first.text
    validate(first.json(), "Devolucao")
    assert first.json()["status"] == "EM_PROCESSAMENTO"
    same = psp.http.put(f"{url}/d1", json={"valor": "4.00"}, headers=_auth(psp))
    assert same.json()["rtrId"] == first.json()["rtrId"]  # the same id is the same devolução
    too_much = psp.http.put(f"{url}/d2", json={"valor": "6.01"}, headers=_auth(psp))
    _problem(too_much, 400, "PixDevolucaoInvalida")
    rest = psp.http.put(f"{url}/d2", json={"valor": "6.00"}, headers=_auth(psp))
    assert rest.status_code == 201
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done = psp.http.get(f"{url}/d2", headers=_auth(psp)).json()
        if done["status"] != "EM_PROCESSAMENTO":
            break
        time.sleep(0.05)
    validate(done, "Devolucao")
    assert done["status"] == "DEVOLVIDO" and "liquidacao" in done["horario"]
    pix = psp.http.get(f"{psp.api_url}/pix/{e2e}", headers=_auth(psp)).json()
    validate(pix, "Pix")
    assert sorted(d["id"] for d in pix["devolucoes"]) == ["d1", "d2"]


@dataclass
class Receiver:
    """A merchant's webhook endpoint over mTLS, recording what each PSP call brought."""

    url: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_first: int = 0
    server: ThreadingHTTPServer | None = None

    def wait(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.calls) < count:
            time.sleep(0.02)
        return self.calls


@pytest.fixture
def receiver(psp: PspEmulator) -> Iterator[Receiver]:
    port = free_port()
    found = Receiver(f"https://127.0.0.1:{port}/hook")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            peer = self.connection.getpeercert()  # type: ignore[attr-defined]
            subject = dict(item[0] for item in peer["subject"]) if peer else {}
            found.calls.append(
                {"path": self.path, "body": json.loads(body), "cn": subject.get("commonName")}
            )
            status = 500 if found.fail_first > 0 else 200
            found.fail_first -= 1
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(psp.dir / "ca.pem"))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(psp.dir / "merchant-server.pem", psp.dir / "merchant-server.key")
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    found.server = server
    chave = psp.credentials["chave"]
    put = psp.http.put(
        f"{psp.api_url}/webhook/{chave}", json={"webhookUrl": found.url}, headers=_auth(psp)
    )
    assert put.status_code == 200, put.text
    try:
        yield found
    finally:
        psp.knobs(drop=0.0, duplicate=0.0, delay=0.0)
        psp.http.delete(f"{psp.api_url}/webhook/{chave}", headers=_auth(psp))
        server.shutdown()


def test_webhook_registration_show_and_delete(psp: PspEmulator, receiver: Receiver) -> None:
    chave = psp.credentials["chave"]
    shown = psp.http.get(f"{psp.api_url}/webhook/{chave}", headers=_auth(psp))
    assert shown.status_code == 200
    body = shown.json()
    assert body["webhookUrl"] == receiver.url
    # WebhookCompleto requires the receiver's cnpj, which a key-only emulator has not got.
    validate({**body, "cnpj": "12345678000195"}, "WebhookCompleto")
    plain = psp.http.put(
        f"{psp.api_url}/webhook/{chave}", json={"webhookUrl": "http://x"}, headers=_auth(psp)
    )
    _problem(plain, 400, "WebhookOperacaoInvalida")


def test_a_payment_is_delivered_over_mtls_to_the_url_plus_pix(
    psp: PspEmulator, receiver: Receiver
) -> None:
    txid = _txid()
    receiver.fail_first = 1  # the first attempt fails: the PSP retries
    assert psp.pay(_cob(psp, txid, valor="5.55").json()["pixCopiaECola"]).returncode == 0
    calls = receiver.wait(2)
    assert len(calls) == 2, calls
    assert calls[0]["body"] == calls[1]["body"]
    assert calls[1]["path"] == "/hook/pix"
    assert calls[1]["cn"] == "psp-emulator webhook"
    body = calls[1]["body"]
    validate(body["pix"][0], "Pix")
    assert body["pix"][0]["txid"] == txid and body["pix"][0]["valor"] == "5.55"


def test_knobs_drop_and_duplicate_deliveries(psp: PspEmulator, receiver: Receiver) -> None:
    psp.knobs(drop=1.0)
    dropped = _txid()
    assert psp.pay(_cob(psp, dropped).json()["pixCopiaECola"]).returncode == 0
    psp.knobs(drop=0.0, duplicate=1.0)
    doubled = _txid()
    assert psp.pay(_cob(psp, doubled).json()["pixCopiaECola"]).returncode == 0
    # The drop is decided when its batch is formed, before the later Pix is even paid.
    calls = receiver.wait(1)
    txids = [p["txid"] for call in receiver.calls for p in call["body"]["pix"]]
    assert txids.count(doubled) == 2 and dropped not in txids, calls
    assert psp.stats()["deliveries"]["dropped"] >= 1


def test_the_payer_refuses_a_broken_code(psp: PspEmulator, tmp_path: Path) -> None:
    code = _cob(psp, _txid()).json()["pixCopiaECola"]
    broken = code[:-1] + ("0" if code[-1] != "0" else "1")
    done = psp.pay(broken)
    assert done.returncode == 1 and "CRC" in done.stderr
