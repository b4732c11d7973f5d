"""The payment page in a real browser (Debian's Chromium) against a real `pixlive serve`.

What a payer sees: the amount, the QR code, the Copia e Cola code, and the status that
changes in place, without a reload, when the charge is paid, cancelled or expires; over
WebSocket, or SSE when WebSocket is unavailable, or long poll when both are. Every test
also fails on a console error, an uncaught exception or a CSP violation in the page.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import REQUIRE
from tests.e2e.conftest import Server, start_server

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
# The README's screenshots are rewritten only on request, so that a test run leaves the
# working tree as it found it: PIXLIVE_UPDATE_SCREENSHOTS=1 make test.
IMG = (
    Path(__file__).resolve().parents[2] / "docs" / "img"
    if os.environ.get("PIXLIVE_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "pixlive-screenshots"
)
TIMEOUT_MS = 10_000
PHONE = {"width": 390, "height": 844}
SMALL_PHONE = {"width": 375, "height": 667}
DESKTOP = {"width": 1280, "height": 800}
VIEWPORTS = {"390x844": PHONE, "375x667": SMALL_PHONE, "desktop": DESKTOP}
# The zone in which the tests read the page's times (the page writes the phone's own).
ZONE = "America/Sao_Paulo"
MERCHANT = "Café da Serra Ltda"
AXE = Path(__file__).resolve().parents[1] / ".npm" / "node_modules" / "axe-core" / "axe.min.js"

WAITING = "Aguardando pagamento"
PAID = "Pagamento confirmado"
CANCELLED = "Cobrança cancelada"
EXPIRED = "Cobrança expirada"

# Set before an update is expected, checked after: a reload would have wiped it.
MARK = "window.__marker = 1"
MARKED = "window.__marker === 1"

# Runs before the page's own script, outside the page's CSP: records every violation.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def _playwright_or_skip() -> Any:
    reason = None
    if not CHROMIUM.exists():
        reason = f"Chromium is not installed at {CHROMIUM}"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:  # pragma: no cover - the dev environment has it
            reason = "the playwright package is not installed"
        else:
            return sync_playwright
    if REQUIRE:
        pytest.fail(f"{reason} and PIXLIVE_REQUIRE_SERVICES=1")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_playwright = _playwright_or_skip()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" viewBox="0 0 40 40">'
    '<circle cx="20" cy="20" r="18" fill="#0f766e"/></svg>'
)
REDIRECT_SECONDS = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the module (each test makes its own charges): starting one
    takes seconds, and the browser tests only read what they create."""
    workdir = tmp_path_factory.mktemp("browser")
    logo = workdir / "logo.svg"
    logo.write_text(LOGO_SVG)
    running = start_server(
        workdir / "server",
        PIXLIVE_MERCHANT_NAME=MERCHANT,
        PIXLIVE_MERCHANT_LOGO_URL=logo.as_uri(),
        PIXLIVE_RETURN_REDIRECT_SECONDS=str(REDIRECT_SECONDS),
    )
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Tab:
    """A page with what went wrong in it."""

    page: Any
    errors: list[str] = field(default_factory=list)
    # Resources the test blocks on purpose: the browser's complaints about them are expected.
    blocked: list[str] = field(default_factory=list)


@dataclass
class Browsing:
    context: Any
    tabs: list[Tab] = field(default_factory=list)

    def open(self) -> Tab:
        page = self.context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        tab = Tab(page)

        def on_console(message: Any) -> None:
            if message.type != "error":
                return
            where = (message.location or {}).get("url", "")
            if any(part in where or part in message.text for part in tab.blocked):
                return
            tab.errors.append(f"console: {message.text} ({where})")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: tab.errors.append(f"pageerror: {exc}"))
        self.tabs.append(tab)
        return tab

    def check_clean(self) -> None:
        problems = []
        for tab in self.tabs:
            problems.extend(tab.errors)
            if not tab.page.is_closed():
                try:
                    problems.extend(f"CSP: {v}" for v in tab.page.evaluate("window.__csp || []"))
                except Exception as exc:  # a page that navigated away mid-test
                    problems.append(f"could not read CSP violations: {exc}")
        assert problems == [], "\n".join(problems)


def new_browsing(browser: Any, viewport: dict[str, int], **options: Any) -> Browsing:
    context = browser.new_context(
        viewport=viewport, device_scale_factor=1, locale="pt-BR", timezone_id=ZONE, **options
    )
    context.add_init_script(WATCH_CSP)
    return Browsing(context)


@pytest.fixture
def browsing(browser: Any) -> Iterator[Browsing]:
    session = new_browsing(browser, PHONE)
    try:
        yield session
        session.check_clean()
    finally:
        session.context.close()


def expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)
    return playwright_expect


def open_charge(tab: Tab, charge: dict[str, Any]) -> Any:
    page = tab.page
    response = page.goto(charge["payment_url"])
    assert response is not None
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    expect()(page.locator("#status")).to_have_text(WAITING)
    return page


def transport(page: Any, name: str) -> None:
    expect()(page.locator("#payment")).to_have_attribute("data-transport", name)


def paid_in_place(page: Any, server: Server, payment_id: str) -> None:
    page.evaluate(MARK)
    answer = server.pay(payment_id)
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["outcome"] == "paid", answer.text
    expect()(page.locator("#status")).to_have_text(PAID)
    assert page.evaluate(MARKED), "the page reloaded instead of updating in place"
    expect()(page.locator("#payment")).to_have_attribute("data-status", "PAID")
    expect()(page.locator("#pay")).to_be_hidden()


def wait_until(page: Any, condition: Callable[[], bool], what: str, seconds: float = 10) -> None:
    """Waits for what Playwright's event handlers record (they run only inside its calls)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        page.wait_for_timeout(50)


# 1. WebSocket ------------------------------------------------------------------------------


def test_page_shows_the_charge_and_turns_paid_live_over_websocket(
    server: Server, browsing: Browsing
) -> None:
    charge = server.create_charge("12.34", description="Pedido #1024 · Café da Serra")
    tab = browsing.open()
    frames: list[str] = []
    tab.page.on(
        "websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload))
    )
    page = open_charge(tab, charge)
    check = expect()

    check(page.locator("#amount")).to_have_text("R$ 12,34")
    check(page.locator("#description")).to_have_text("Pedido #1024 · Café da Serra")
    page.wait_for_function(
        "() => { const img = document.getElementById('qr');"
        " return img.complete && img.naturalWidth > 0; }"
    )
    assert page.locator("#code").input_value() == charge["pix_copia_e_cola"]
    check(page.locator("#copy")).to_be_visible()
    check(page.locator("#countdown")).to_have_text(re.compile(r"^Expira em \d\d:\d\d$"))
    status = page.locator("#status")
    check(status).to_have_attribute("aria-live", "polite")
    check(status).to_have_text(WAITING)
    transport(page, "websocket")
    # The snapshot came over the socket: the page is live before the payer pays.
    wait_until(page, lambda: any('"snapshot"' in str(f) for f in frames), "the WebSocket snapshot")

    IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMG / "payment-before.png"), full_page=True, animations="disabled")

    paid_in_place(page, server, charge["id"])
    assert any('"payment.paid"' in str(f) for f in frames), frames
    check(status).to_have_attribute("aria-live", "polite")
    check(page.locator("#countdown")).to_be_hidden()
    assert page.title() == "R$ 12,34 · Pagamento confirmado"
    page.screenshot(path=str(IMG / "payment-after.png"), full_page=True, animations="disabled")

    # A reload now renders the final state from the server.
    page.reload()
    check(status).to_have_text(PAID)
    check(page.locator("#pay")).to_be_hidden()


# 2. and 3. fallbacks -------------------------------------------------------------------------


def refuse_websockets(tab: Tab) -> list[str]:
    """A proxy that accepts the upgrade and hangs up at once, every time."""
    tried: list[str] = []

    def handler(ws: Any) -> None:
        tried.append(ws.url)
        ws.close()

    tab.page.route_web_socket(re.compile(r"/ws(\?|$)"), handler)
    tab.blocked.append("/ws")
    return tried


def test_falls_back_to_sse_without_websocket(server: Server, browsing: Browsing) -> None:
    charge = server.create_charge("12.34")
    tab = browsing.open()
    tried = refuse_websockets(tab)
    streams: list[str] = []
    tab.page.on("response", lambda r: streams.append(r.url) if "/events" in r.url else None)
    page = open_charge(tab, charge)

    transport(page, "sse")
    assert len(tried) >= 2, "the page gave up on WebSocket without retrying once"
    wait_until(page, lambda: bool(streams), "the SSE stream to open")
    paid_in_place(page, server, charge["id"])
    assert page.locator("#payment").get_attribute("data-transport") == "sse"


def test_falls_back_to_long_poll_without_websocket_and_sse(
    server: Server, browsing: Browsing
) -> None:
    charge = server.create_charge("12.34")
    tab = browsing.open()
    refuse_websockets(tab)
    tab.page.route(re.compile(r"/events(\?|$)"), lambda route: route.abort())
    tab.blocked.append("/events")
    polls: list[str] = []
    tab.page.on("request", lambda r: polls.append(r.url) if "/poll?" in r.url else None)
    page = open_charge(tab, charge)

    transport(page, "poll")
    wait_until(page, lambda: bool(polls), "the first long poll")
    paid_in_place(page, server, charge["id"])
    assert page.locator("#payment").get_attribute("data-transport") == "poll"


# 4. cancel and expiry ------------------------------------------------------------------------


def test_cancel_reaches_the_open_page(server: Server, browsing: Browsing) -> None:
    charge = server.create_charge("12.34")
    page = open_charge(browsing.open(), charge)
    transport(page, "websocket")
    page.evaluate(MARK)

    answer = httpx.post(f"{server.url}/payments/pix/{charge['id']}/cancel", headers=server.auth)
    assert answer.status_code == 200, answer.text

    expect()(page.locator("#status")).to_have_text(CANCELLED)
    assert page.evaluate(MARKED), "the page reloaded instead of updating in place"
    expect()(page.locator("#pay")).to_be_hidden()
    expect()(page.locator("#simulate-form")).to_be_hidden()


def test_expiry_reaches_the_open_page(server: Server, browsing: Browsing) -> None:
    # The shortest allowed expiry is 60 s; instead of waiting, the charge's deadline is moved
    # into the past in the database, and the server's own expiry sweep (every second)
    # expires it and publishes payment.expired, as it would at the real deadline.
    charge = server.create_charge("12.34", expires_in=60)
    page = open_charge(browsing.open(), charge)
    transport(page, "websocket")
    page.evaluate(MARK)

    with closing(sqlite3.connect(server.workdir / "pixlive.db", timeout=10)) as db, db:
        moved = db.execute(
            "UPDATE charges SET expires_at = ? WHERE id = ? AND status = 'ACTIVE'",
            (int(time.time() * 1000) - 1000, charge["id"]),
        ).rowcount
    assert moved == 1

    expect()(page.locator("#status")).to_have_text(EXPIRED)
    assert page.evaluate(MARKED), "the page reloaded instead of updating in place"
    expect()(page.locator("#pay")).to_be_hidden()
    events = httpx.get(
        f"{server.url}/payments/pix/{charge['id']}/poll", params={"after": 0, "timeout": 0}
    ).json()["events"]
    assert [e["type"] for e in events][-1] == "payment.expired"


# 5. the sandbox, as a newcomer uses it ---------------------------------------------------------


def test_sandbox_newcomer_flow_updates_a_second_tab(server: Server, browsing: Browsing) -> None:
    first = browsing.open().page
    first.goto(server.url + "/")
    first.get_by_label("Valor (R$)").fill("12,34")
    first.get_by_label("Descrição").fill("Teste do sandbox")
    first.get_by_role("button", name="Criar cobrança de teste").click()

    first.wait_for_url(re.compile(r"/payments/pix/[A-Za-z0-9]{25}$"))
    check = expect()
    check(first.locator("#amount")).to_have_text("R$ 12,34")
    check(first.locator("#status")).to_have_text(WAITING)
    check(first.locator("#sandbox-badge")).to_be_visible()

    second = browsing.open().page
    second.goto(first.url)
    check(second.locator("#status")).to_have_text(WAITING)
    transport(second, "websocket")
    second.evaluate(MARK)
    first.evaluate(MARK)

    first.get_by_role("button", name="Simular pagamento").click()

    check(second.locator("#status")).to_have_text(PAID)
    check(first.locator("#status")).to_have_text(PAID)
    assert second.evaluate(MARKED), "the second tab reloaded instead of updating in place"
    assert first.evaluate(MARKED), "the first tab reloaded instead of updating in place"
    check(second.locator("#simulate-form")).to_be_hidden()


# 7. reconnect -------------------------------------------------------------------------------------


def test_reconnects_after_the_socket_drops_and_still_turns_paid(
    server: Server, browsing: Browsing
) -> None:
    charge = server.create_charge("12.34")
    tab = browsing.open()
    sockets: list[Any] = []
    received: list[list[str]] = []

    def through(ws: Any) -> None:
        # A transparent proxy to the real server, that the test can cut.
        upstream = ws.connect_to_server()
        messages: list[str] = []

        def forward(message: str | bytes) -> None:
            messages.append(str(message))
            ws.send(message)

        upstream.on_message(forward)
        sockets.append(ws)
        received.append(messages)

    tab.page.route_web_socket(re.compile(r"/ws(\?|$)"), through)
    page = open_charge(tab, charge)
    transport(page, "websocket")
    wait_until(page, lambda: len(sockets) == 1, "the first WebSocket")
    wait_until(page, lambda: any('"snapshot"' in m for m in received[0]), "the first snapshot")
    page.evaluate(MARK)

    sockets[0].close(code=1001, reason="network changed")
    wait_until(page, lambda: len(sockets) == 2, "the page to reconnect")
    # It resumes from the last event it applied, not from the start.
    assert sockets[1].url.endswith(f"/ws?after={charge['last_event_id']}"), sockets[1].url

    paid_in_place(page, server, charge["id"])
    assert page.locator("#payment").get_attribute("data-transport") == "websocket"
    assert any('"payment.paid"' in m for m in received[1]), received


# 8. what the payer sees: whom they pay, the deadline, the receipt, the way back ---------------


def brasilia(iso_time: str) -> datetime:
    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).astimezone(ZoneInfo(ZONE))


def test_the_page_names_the_merchant_and_shows_its_logo_from_our_origin(
    server: Server, browsing: Browsing
) -> None:
    charge = server.create_charge("12.34")
    tab = browsing.open()
    images: list[str] = []
    tab.page.on("response", lambda r: images.append(r.url) if "logo" in r.url else None)
    page = open_charge(tab, charge)
    check = expect()
    check(page.get_by_role("heading", level=1)).to_have_text(MERCHANT)
    logo = page.locator("#merchant-logo")
    check(logo).to_be_visible()
    page.wait_for_function(
        "() => { const img = document.getElementById('merchant-logo');"
        " return img.complete && img.naturalWidth > 0; }"
    )
    assert images and all(url.startswith(server.url + "/") for url in images), images
    answer = server.http.get("/merchant/logo")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("image/svg+xml")
    assert answer.text == LOGO_SVG


def test_on_a_small_phone_the_code_and_its_button_come_before_the_qr_code(
    server: Server, browser: Any
) -> None:
    charge = server.create_charge("1234.56", description="Pedido #2048 · Café em grãos 1 kg")
    for viewport, code_first in ((SMALL_PHONE, True), (PHONE, True), (DESKTOP, False)):
        session = new_browsing(browser, viewport)
        try:
            page = open_charge(session.open(), charge)
            copy = page.locator("#copy").bounding_box()
            code = page.locator("#code").bounding_box()
            qr = page.locator("#qr").bounding_box()
            assert copy and code and qr
            if code_first:
                # Copy without scrolling: the button is whole inside the first screen.
                assert copy["y"] + copy["height"] <= viewport["height"], (viewport, copy)
                assert code["y"] < copy["y"] < qr["y"], (viewport, code, copy, qr)
            else:
                assert qr["y"] < code["y"], (viewport, qr, code)
            session.check_clean()
        finally:
            session.context.close()


def test_the_deadline_shows_beside_the_countdown(server: Server, browsing: Browsing) -> None:
    charge = server.create_charge("12.34", expires_in=3600)
    page = open_charge(browsing.open(), charge)
    due = brasilia(charge["expires_at"])
    today = datetime.now(ZoneInfo(ZONE)).date()
    expected = (
        f"Pague até {due:%H:%M}" if due.date() == today else f"Pague até {due:%d/%m} às {due:%H:%M}"
    )
    expect()(page.locator("#deadline")).to_have_text(expected)
    expect()(page.locator("#countdown")).to_have_text(re.compile(r"^Expira em \d\d:\d\d$"))


def test_without_javascript_the_deadline_shows_and_the_page_follows_the_charge(
    server: Server, browser: Any
) -> None:
    charge = server.create_charge("12.34", expires_in=3600)
    session = new_browsing(browser, SMALL_PHONE, java_script_enabled=False)
    try:
        page = open_charge(session.open(), charge)
        due = brasilia(charge["expires_at"])
        expect()(page.locator("#deadline")).to_contain_text(f"{due:%H:%M}")
        expect()(page.locator("#deadline")).to_contain_text("Pague até")
        assert server.pay(charge["id"]).json()["results"][0]["outcome"] == "paid"
        # The page reloads itself (every 5 s) and shows the payment with its receipt.
        expect()(page.locator("#status")).to_have_text(PAID, timeout=15_000)
        expect()(page.locator("#receipt")).to_be_visible()
        expect()(page.locator("#end-to-end-id")).to_have_text(
            server.charge(charge["id"])["end_to_end_id"]
        )
    finally:
        session.context.close()


def test_after_payment_the_receipt_and_the_way_back_to_the_shop(
    server: Server, browsing: Browsing
) -> None:
    shop = server.url + "/?voltou=1"
    charge = server.create_charge("12.34", return_url=shop)
    page = open_charge(browsing.open(), charge)
    check = expect()
    check(page.locator("#amount-label")).to_have_text("Valor a pagar")
    check(page.locator("#receipt")).to_be_hidden()
    check(page.locator("#return")).to_be_hidden()
    transport(page, "websocket")

    paid_in_place(page, server, charge["id"])
    paid = server.charge(charge["id"])
    check(page.locator("#amount-label")).to_have_text("Valor pago")
    check(page.locator("#receipt")).to_be_visible()
    check(page.locator("#end-to-end-id")).to_have_text(paid["end_to_end_id"])
    when = brasilia(paid["paid_at"])
    check(page.locator("#paid-at")).to_have_text(f"{when:%d/%m/%Y} às {when:%H:%M}")
    link = page.get_by_role("link", name="Voltar para a loja")
    check(link).to_have_attribute("href", shop)
    check(page.locator("#redirect-note")).to_contain_text("Voltando para a loja em")
    # The merchant asked for a redirect after a few seconds: the page goes back by itself.
    page.wait_for_url(shop, timeout=(REDIRECT_SECONDS + 8) * 1000)


def test_the_payer_may_stay_on_the_receipt(server: Server, browsing: Browsing) -> None:
    charge = server.create_charge("12.34", return_url=server.url + "/?voltou=1")
    page = open_charge(browsing.open(), charge)
    transport(page, "websocket")
    paid_in_place(page, server, charge["id"])
    page.get_by_role("button", name="Ficar nesta página").click()
    check = expect()
    check(page.locator("#redirect-note")).to_have_text("Você continua nesta página.")
    page.wait_for_timeout((REDIRECT_SECONDS + 1) * 1000)
    assert "/payments/pix/" in page.url
    # A receipt opened again later stays on screen too, with its details from the server.
    page.reload()
    check(page.locator("#amount-label")).to_have_text("Valor pago")
    check(page.locator("#end-to-end-id")).to_have_text(server.charge(charge["id"])["end_to_end_id"])
    check(page.locator("#redirect-note")).to_be_hidden()


def test_cancelled_and_expired_say_what_to_do(server: Server, browsing: Browsing) -> None:
    shop = server.url + "/?voltou=1"
    charge = server.create_charge("12.34", return_url=shop)
    page = open_charge(browsing.open(), charge)
    transport(page, "websocket")
    answer = server.http.post(f"/payments/pix/{charge['id']}/cancel", headers=server.auth)
    assert answer.status_code == 200, answer.text
    check = expect()
    check(page.locator("#status")).to_have_text(CANCELLED)
    check(page.locator(".detail-cancelled")).to_contain_text("peça uma nova cobrança")
    check(page.get_by_role("link", name="Voltar para a loja")).to_have_attribute("href", shop)
    check(page.locator("#receipt")).to_be_hidden()


def test_simulating_by_keyboard_keeps_the_focus_on_the_page(
    server: Server, browsing: Browsing
) -> None:
    charge = server.create_charge("12.34")
    page = open_charge(browsing.open(), charge)
    transport(page, "websocket")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "simulate":
            break
    else:
        raise AssertionError("Tab never reached the Simular pagamento button")
    page.keyboard.press("Enter")
    expect()(page.locator("#status")).to_have_text(PAID)
    focused = page.evaluate("document.activeElement.id")
    assert focused == "state", f"focus went to {focused or 'body'}"


def test_home_form_takes_brazilian_money_and_explains_in_portuguese(
    server: Server, browsing: Browsing
) -> None:
    tab = browsing.open()
    tab.blocked.append("/sandbox/charges")  # the browser logs the 422 it was given: expected
    page = tab.page
    page.goto(server.url + "/")
    page.get_by_label("Valor (R$)").fill("1.234,56")
    page.get_by_role("button", name="Criar cobrança de teste").click()
    page.wait_for_url(re.compile(r"/payments/pix/[A-Za-z0-9]{25}$"))
    expect()(page.locator("#amount")).to_have_text("R$ 1.234,56")

    page.goto(server.url + "/")
    field = page.get_by_label("Valor (R$)")
    field.fill("doze reais")
    page.get_by_role("button", name="Criar cobrança de teste").click()
    alert = page.get_by_role("alert")
    expect()(alert).to_contain_text("Não entendemos o valor")
    expect()(page.get_by_label("Valor (R$)")).to_have_attribute("aria-invalid", "true")
    expect()(page.get_by_label("Valor (R$)")).to_have_value("doze reais")


def test_a_mistyped_link_shows_a_page_in_portuguese(server: Server, browsing: Browsing) -> None:
    page = browsing.open().page
    for path, title in (
        ("/payments/pix/" + "Q" * 25, "Cobrança não encontrada"),
        ("/payments/pix/abc", "Cobrança não encontrada"),
        ("/nada-aqui", "Página não encontrada"),
    ):
        response = page.goto(server.url + path)
        assert response is not None and response.status == 404
        assert response.headers["content-type"].startswith("text/html")
        expect()(page.get_by_role("heading", level=1)).to_have_text(title)
    browsing.tabs[0].errors.clear()  # the browser logs each 404 it was given: expected


# 9. accessibility: axe-core on every page, in every state, at every size -----------------------


def axe_or_skip() -> str:
    if AXE.exists():
        return AXE.read_text()
    reason = f"axe-core is not installed at {AXE} (make test installs it with npm)"
    if REQUIRE:
        pytest.fail(f"{reason} and PIXLIVE_REQUIRE_SERVICES=1")
    pytest.skip(reason)


def axe_violations(page: Any, source: str) -> list[str]:
    # Evaluated by the browser's debugger, which the page's CSP does not govern: the page
    # itself keeps its policy (and the test its check that nothing breaks it).
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(source)
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
    )
    return list(found)


def _pages(server: Server) -> list[tuple[str, str, Callable[[Any], None]]]:
    """(name, path, what to do once it is open) for every page a person can meet."""
    active = server.create_charge("1234.56", description="Pedido #1 · Café", return_url=server.url)
    paid = server.create_charge("12.34", return_url=server.url + "/?voltou=1")
    server.pay(paid["id"])
    cancelled = server.create_charge("12.34", return_url=server.url)
    server.http.post(f"/payments/pix/{cancelled['id']}/cancel", headers=server.auth)
    expired = server.create_charge("12.34", expires_in=60)
    with closing(sqlite3.connect(server.workdir / "pixlive.db", timeout=10)) as db, db:
        db.execute(
            "UPDATE charges SET expires_at = ? WHERE id = ?",
            (int(time.time() * 1000) - 1000, expired["id"]),
        )
    live = server.create_charge("12.34", return_url=server.url + "/?voltou=1")

    def nothing(page: Any) -> None:
        pass

    def pay_live(page: Any) -> None:
        transport(page, "websocket")
        server.pay(live["id"])
        expect()(page.locator("#status")).to_have_text(PAID)
        page.get_by_role("button", name="Ficar nesta página").click()

    def bad_form(page: Any) -> None:
        page.get_by_label("Valor (R$)").fill("1.234")
        page.get_by_role("button", name="Criar cobrança de teste").click()
        expect()(page.get_by_role("alert")).to_be_visible()

    def status(text: str) -> Callable[[Any], None]:
        return lambda page: expect()(page.locator("#status")).to_have_text(text)

    return [
        ("home", "/", nothing),
        ("home with errors", "/", bad_form),
        ("active", f"/payments/pix/{active['id']}", status(WAITING)),
        ("paid", f"/payments/pix/{paid['id']}", status(PAID)),
        ("paid live", f"/payments/pix/{live['id']}", pay_live),
        ("cancelled", f"/payments/pix/{cancelled['id']}", status(CANCELLED)),
        ("expired", f"/payments/pix/{expired['id']}", status(EXPIRED)),
        ("charge not found", "/payments/pix/" + "Q" * 25, nothing),
        ("page not found", "/nada-aqui", nothing),
    ]


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_no_axe_violations_on_any_page(server: Server, browser: Any, size: str) -> None:
    source = axe_or_skip()
    session = new_browsing(browser, VIEWPORTS[size])
    found: dict[str, list[str]] = {}
    try:
        tab = session.open()
        # The browser logs each error status it was given: those are expected here.
        tab.blocked.extend(["/sandbox/charges", "/nada-aqui", "Q" * 25])
        for name, path, then in _pages(server):
            tab.page.goto(server.url + path)
            then(tab.page)
            violations = axe_violations(tab.page, source)
            if violations:
                found[name] = violations
        session.check_clean()
    finally:
        session.context.close()
    assert found == {}, "\n".join(f"{name}: {v}" for name, vs in found.items() for v in vs)
