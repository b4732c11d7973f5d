"""Sandbox mode over real HTTP: the home page's form, the demo charge, "Simular pagamento",
and the security headers of the HTML pages."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.e2e.conftest import Server, assert_error

CHARGE_PAGE = re.compile(r"/payments/pix/([A-Za-z0-9]{25})")


class Tags(HTMLParser):
    """Every start tag of a page, with its attributes, and the text inside <script>s."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_script = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_script += data.strip()

    def find(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def make_demo_charge(server: Server, **form: str) -> str:
    answer = server.http.post("/sandbox/charges", data={"value": "10.00", **form})
    assert answer.status_code == 303, answer.text
    found = CHARGE_PAGE.fullmatch(answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


def test_home_page_is_a_form(shared_server: Server) -> None:
    answer = shared_server.http.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    page = parse(answer.text)
    forms = page.find("form")
    assert any(
        f.get("action") == "/sandbox/charges" and (f.get("method") or "").lower() == "post"
        for f in forms
    ), forms
    names = {i.get("name") for i in page.find("input")}
    assert {"value", "description"} <= names
    assert page.find("html")[0].get("lang") == "pt-BR"


def test_demo_charge_and_simulated_payment(shared_server: Server) -> None:
    payment_id = make_demo_charge(shared_server, description="Café da manhã")
    charge = shared_server.charge(payment_id)
    assert charge["status"] == "ACTIVE"
    assert charge["value"] == "10.00"
    assert charge["description"] == "Café da manhã"

    page = shared_server.http.get(f"/payments/pix/{payment_id}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "R$ 10,00" in page.text
    assert "Simular pagamento" in page.text
    simulate_url = f"/sandbox/payments/{payment_id}/simulate"
    assert any(f.get("action") == simulate_url for f in parse(page.text).find("form"))

    answer = shared_server.http.post(simulate_url)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/payments/pix/{payment_id}"
    paid = shared_server.charge(payment_id)
    assert paid["status"] == "PAID"
    assert paid["end_to_end_id"] and paid["paid_at"]

    paid_page = shared_server.http.get(answer.headers["location"], headers={"Accept": "text/html"})
    assert "Pagamento confirmado" in paid_page.text


def test_pressing_simulate_twice_pays_once(shared_server: Server) -> None:
    """A double click is the PSP retrying, not a second Pix booked against a paid charge."""
    payment_id = make_demo_charge(shared_server)
    url = f"/sandbox/payments/{payment_id}/simulate"
    assert shared_server.http.post(url).status_code == 303
    paid = shared_server.charge(payment_id)
    assert shared_server.http.post(url).status_code == 303
    assert shared_server.charge(payment_id) == paid  # no mismatch event either


def test_demo_charge_accepts_a_comma_and_refuses_garbage(shared_server: Server) -> None:
    payment_id = make_demo_charge(shared_server, value="10,50")
    assert shared_server.charge(payment_id)["value"] == "10.50"

    before = shared_server.charges()
    for value in ("abc", "0", "-1", "10.999", "1e3", "10.00.00"):
        answer = shared_server.http.post("/sandbox/charges", data={"value": value})
        assert 400 <= answer.status_code < 500, (value, answer.status_code)
    refused = shared_server.http.post("/sandbox/charges", data={"value": "abc"})
    assert refused.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in refused.text
    # What was typed is given back, escaped.
    tricky = shared_server.http.post("/sandbox/charges", data={"value": '"><b>x'})
    assert "<b>x" not in tricky.text
    assert shared_server.charges() == before


def test_simulate_on_an_unknown_charge_is_404(shared_server: Server) -> None:
    before = shared_server.charges()
    assert_error(shared_server.http.post("/sandbox/payments/" + "Q" * 25 + "/simulate"), 404)
    assert_error(shared_server.http.post("/sandbox/payments/nope/simulate"), 404)
    assert shared_server.charges() == before


@pytest.mark.parametrize("page", ["home", "payment", "paid payment", "json", "error"])
def test_security_headers(shared_server: Server, page: str) -> None:
    if page == "home":
        answer = shared_server.http.get("/")
    elif page == "json":
        answer = shared_server.http.get(f"/payments/pix/{make_demo_charge(shared_server)}")
    elif page == "error":
        answer = shared_server.http.get("/payments/pix/" + "Q" * 25)
    else:
        payment_id = make_demo_charge(shared_server)
        if page == "paid payment":
            shared_server.http.post(f"/sandbox/payments/{payment_id}/simulate")
        answer = shared_server.http.get(
            f"/payments/pix/{payment_id}", headers={"Accept": "text/html"}
        )
    headers = answer.headers
    csp = headers.get("content-security-policy", "")
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, csp
    script_src = directives.get("script-src") or directives.get("default-src")
    assert script_src == ["'self'"], csp
    assert directives.get("frame-ancestors") == ["'none'"], csp
    assert "*" not in csp.split(), csp
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("referrer-policy") == "no-referrer"

    if headers["content-type"].startswith("text/html"):
        tags = parse(answer.text)
        # What the CSP allows is all the page needs: no inline script or handler...
        assert tags.inline_script == ""
        for _, attrs in tags.tags:
            assert not [a for a in attrs if a.startswith("on")], attrs
            assert not (attrs.get("href") or "").lower().startswith("javascript:")
        # ...and nothing from another site.
        for name in ("script", "link", "img"):
            for attrs in tags.find(name):
                for attr in ("src", "href"):
                    target = attrs.get(attr) or ""
                    assert not re.match(r"^(https?:)?//", target), (name, target)
        for attrs in tags.find("script"):
            assert attrs.get("src"), attrs


def test_static_assets_are_served(shared_server: Server) -> None:
    page = shared_server.http.get(
        f"/payments/pix/{make_demo_charge(shared_server)}", headers={"Accept": "text/html"}
    )
    assets = [a.get("src") for a in parse(page.text).find("script")] + [
        a.get("href") for a in parse(page.text).find("link") if a.get("rel") == "stylesheet"
    ]
    assert assets
    for asset in assets:
        assert asset
        answer = shared_server.http.get(asset)
        assert answer.status_code == 200, asset
        assert answer.headers.get("x-content-type-options") == "nosniff"


def test_demo_charge_takes_brazilian_money_and_answers_in_portuguese(
    shared_server: Server,
) -> None:
    payment_id = make_demo_charge(shared_server, value="1.234,56")
    assert shared_server.charge(payment_id)["value"] == "1234.56"

    before = shared_server.charges()
    refused = shared_server.http.post(
        "/sandbox/charges", data={"value": "10,00", "description": "x" * 141}
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("text/html")
    assert "A descrição pode ter até 140 caracteres." in refused.text
    ambiguous = shared_server.http.post("/sandbox/charges", data={"value": "1.234"})
    assert ambiguous.status_code == 422
    assert "por exemplo 1.234,00" in ambiguous.text
    assert shared_server.charges() == before


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("/payments/pix/" + "Q" * 25, "Cobrança não encontrada"),
        ("/payments/pix/mistyped", "Cobrança não encontrada"),
        ("/payments/pix/" + "Q" * 25 + "/qrcode.svg", "Cobrança não encontrada"),
        ("/nada", "Página não encontrada"),
    ],
)
def test_a_browser_meets_errors_as_pages_in_portuguese(
    shared_server: Server, path: str, title: str
) -> None:
    page = shared_server.http.get(path, headers=BROWSER)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert title in page.text
    assert parse(page.text).find("html")[0].get("lang") == "pt-BR"
    # The same URL still answers the error JSON to a program.
    assert_error(shared_server.http.get(path), 404)


def test_return_url_is_kept_and_shown_to_the_merchant(shared_server: Server) -> None:
    shop = "https://loja.example/pedidos/1024?status=pago"
    charge = shared_server.create_charge("12.34", return_url=shop)
    assert charge["return_url"] == shop
    assert shared_server.charge(charge["id"])["return_url"] == shop
    # The public view does not carry it; the page does, as its link back.
    assert "return_url" not in shared_server.charge(charge["id"], merchant=False)
    page = shared_server.http.get(charge["payment_url"], headers=BROWSER)
    links = [a for a in parse(page.text).find("a") if a.get("id") == "return-link"]
    assert [a.get("href") for a in links] == [shop]
    # In the sandbox a local shop over plain HTTP is fine.
    local = shared_server.create_charge("12.34", return_url="http://127.0.0.1:3000/obrigado")
    assert local["return_url"] == "http://127.0.0.1:3000/obrigado"


@pytest.mark.parametrize(
    "bad",
    [
        "javascript:alert(1)",
        "data:text/html,hi",
        "/relative/path",
        "https://user:pass@loja.example/",
        "https://loja.example/a b",
        "https://",
        "https://loja.example/" + "a" * 2000,
    ],
)
def test_a_return_url_that_is_not_a_web_address_is_refused(shared_server: Server, bad: str) -> None:
    before = shared_server.charges()
    answer = shared_server.http.post(
        "/payments/pix",
        json={"value": "12.34", "return_url": bad},
        headers=shared_server.auth,
    )
    assert_error(answer, 422)
    assert "return_url" in answer.json()["error"]["message"]
    assert shared_server.charges() == before
