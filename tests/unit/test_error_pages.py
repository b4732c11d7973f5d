"""Every error a browser can meet is a page in Portuguese; an API client still gets JSON."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pixlive.adapters.errors import DatabaseUnavailable
from pixlive.api import errors
from pixlive.api.errors import ApiError
from pixlive.realtime.admission import Refused

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def app() -> FastAPI:
    made = FastAPI()
    errors.install(made)

    @made.get("/gone")
    async def gone() -> None:
        raise ApiError(410, "gone", "this link is no longer valid")

    @made.get("/busy")
    async def busy() -> None:
        raise Refused("too_many_streams", "too many streams", retry_after=7)

    @made.get("/database")
    async def database() -> None:
        raise DatabaseUnavailable("connection refused")

    @made.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    return made


CASES = [
    ("/gone", 410, "Esta página não existe mais"),
    ("/busy", 429, "Muitas tentativas seguidas"),
    ("/database", 503, "Serviço indisponível no momento"),
    ("/bug", 500, "Algo deu errado do nosso lado"),
    ("/payments/pix/nope", 404, "Cobrança não encontrada"),
    ("/nowhere", 404, "Página não encontrada"),
]


@pytest.mark.parametrize(("path", "status", "title"), CASES)
def test_a_browser_gets_a_page_in_portuguese(path: str, status: int, title: str) -> None:
    with TestClient(app(), raise_server_exceptions=False) as client:
        answer = client.get(path, headers=BROWSER)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert f'<h1 class="title" data-testid="error-title">{title}</h1>' in answer.text
    assert '<html lang="pt-BR">' in answer.text
    assert answer.headers["cache-control"] == "no-store"
    # Nothing of the internals reaches the page.
    assert "a bug" not in answer.text and "connection refused" not in answer.text


@pytest.mark.parametrize(("path", "status", "title"), CASES)
def test_an_api_client_still_gets_the_error_json(path: str, status: int, title: str) -> None:
    with TestClient(app(), raise_server_exceptions=False) as client:
        answer = client.get(path, headers={"Accept": "application/json"})
    assert answer.status_code == status
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}


def test_retry_after_is_kept_on_the_page() -> None:
    with TestClient(app()) as client:
        answer = client.get("/busy", headers=BROWSER)
    assert answer.headers["retry-after"] == "7"
