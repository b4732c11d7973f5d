"""The API Pix client against a scripted PSP (httpx.MockTransport), with injected clock and
sleep: token caching and the one refresh on 401, retries, errors translated."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pixlive.adapters.apipix.client import ApiPixClient, ApiPixConfig
from pixlive.domain.charge import Payer
from pixlive.services.psp_port import CobRequest, PspNotFound, PspRefused, PspUnavailable

TXID = "T" * 30
COB = {
    "txid": TXID,
    "status": "ATIVA",
    "valor": {"original": "12.34"},
    "chave": "key@example.com",
    "pixCopiaECola": "000201...",
    "location": "psp.example/qr/v2/x",
    "calendario": {"criacao": "2026-12-01T00:00:00Z", "expiracao": 60},
    "revisao": 0,
}
REQUEST = CobRequest(txid=TXID, value=1234, expires_in=60, chave="key@example.com")


class Psp:
    """Answers token requests itself; hands every API call to `api`."""

    def __init__(self, api: Callable[[httpx.Request], httpx.Response]) -> None:
        self.api = api
        self.tokens = 0
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            self.tokens += 1
            return httpx.Response(
                200,
                json={"access_token": f"t{self.tokens}", "token_type": "Bearer", "expires_in": 600},
            )
        self.calls.append(request)
        return self.api(request)


def client(psp: Psp, clock: list[float], **config: Any) -> tuple[ApiPixClient, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    made = ApiPixClient(
        ApiPixConfig(
            api_url="https://psp.example/api/v2", client_id="id", client_secret="secret", **config
        ),
        transport=httpx.MockTransport(psp),
        clock=lambda: clock[0],
        sleep=sleep,
    )
    return made, slept


def problem(status: int, kind: str, detail: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "type": f"https://pix.bcb.gov.br/api/v2/error/{kind}",
            "title": kind,
            "status": status,
            "detail": detail,
        },
        headers={"content-type": "application/problem+json"},
    )


async def test_the_token_is_cached_until_shortly_before_it_expires() -> None:
    psp = Psp(lambda request: httpx.Response(200, json=COB))
    clock = [1000.0]
    api, _ = client(psp, clock)
    await api.get_cob(TXID)
    clock[0] += 500  # within 600 s minus the 60 s margin
    await api.get_cob(TXID)
    assert psp.tokens == 1
    clock[0] += 41  # 541 s: inside the margin, so renewed before the PSP would refuse it
    await api.get_cob(TXID)
    assert psp.tokens == 2
    assert [c.headers["authorization"] for c in psp.calls] == [
        "Bearer t1",
        "Bearer t1",
        "Bearer t2",
    ]
    await api.close()


async def test_a_401_fetches_a_new_token_once_and_retries() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer t1":
            return problem(401, "AcessoNegado", "token expirado")
        return httpx.Response(200, json=COB)

    psp = Psp(api)
    made, _ = client(psp, [0.0])
    cob = await made.get_cob(TXID)
    assert cob.txid == TXID and psp.tokens == 2 and len(psp.calls) == 2


async def test_a_401_that_persists_is_refused_after_one_refresh() -> None:
    psp = Psp(lambda request: problem(401, "AcessoNegado", "no"))
    made, _ = client(psp, [0.0])
    with pytest.raises(PspRefused):
        await made.get_cob(TXID)
    assert psp.tokens == 2 and len(psp.calls) == 2


async def test_idempotent_calls_are_retried_with_backoff_then_unavailable() -> None:
    psp = Psp(lambda request: problem(503, "ServicoIndisponivel", "fora do ar"))
    made, slept = client(psp, [0.0], attempts=3, backoff=0.5)
    with pytest.raises(PspUnavailable) as down:
        await made.get_cob(TXID)
    assert len(psp.calls) == 3 and slept == [0.5, 1.0]
    assert down.value.status == 503 and down.value.problem == "ServicoIndisponivel"


async def test_an_unreachable_psp_is_unavailable_and_names_no_secret() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    made, slept = client(Psp(api), [0.0], attempts=2)
    with pytest.raises(PspUnavailable) as down:
        await made.get_cob(TXID)
    assert len(slept) == 1 and "secret" not in str(down.value)


async def test_a_refusal_carries_the_problem_detail() -> None:
    psp = Psp(lambda request: problem(400, "CobOperacaoInvalida", "valor inválido"))
    made, slept = client(psp, [0.0])
    with pytest.raises(PspRefused) as refused:
        await made.get_cob(TXID)
    assert "valor inválido" in refused.value.message and slept == [] and len(psp.calls) == 1
    with pytest.raises(PspNotFound):
        await client(Psp(lambda r: problem(404, "CobNaoEncontrado", "x")), [0.0])[0].get_cob(TXID)


async def test_create_sends_the_cob_and_adopts_its_own_after_a_lost_answer() -> None:
    sent: list[dict[str, Any]] = []

    def api(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            sent.append(json.loads(request.content))
            return problem(400, "CobOperacaoInvalida", "txid já utilizado")
        return httpx.Response(200, json=COB)

    made, _ = client(Psp(api), [0.0])
    request = CobRequest(
        txid=TXID,
        value=1234,
        expires_in=60,
        chave="key@example.com",
        description="Pedido",
        payer=Payer(name="Ana", cpf="12345678909"),
    )
    cob = await made.create_cob(request)
    assert cob.pix_copia_e_cola == "000201..." and cob.value == 1234
    assert sent == [
        {
            "calendario": {"expiracao": 60},
            "valor": {"original": "12.34"},
            "chave": "key@example.com",
            "solicitacaoPagador": "Pedido",
            "devedor": {"cpf": "12345678909", "nome": "Ana"},
        }
    ]


async def test_create_does_not_adopt_someone_elses_cob() -> None:
    other = {**COB, "valor": {"original": "99.00"}}

    def api(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            return problem(400, "CobOperacaoInvalida", "txid já utilizado")
        return httpx.Response(200, json=other)

    made, _ = client(Psp(api), [0.0])
    with pytest.raises(PspRefused):
        await made.create_cob(REQUEST)


async def test_the_inter_profile_asks_its_token_with_scopes_at_its_own_path() -> None:
    seen: list[httpx.Request] = []

    def transport(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/oauth/v2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 600})
        return httpx.Response(200, json=COB)

    made = ApiPixClient(
        ApiPixConfig(
            api_url="https://cdpj.example/pix/v2", client_id="i", client_secret="s", profile="inter"
        ),
        transport=httpx.MockTransport(transport),
    )
    await made.get_cob(TXID)
    assert seen[0].url.path == "/oauth/v2/token" and b"scope=cob.write" in seen[0].content
    assert seen[1].url.path == f"/pix/v2/cob/{TXID}"
