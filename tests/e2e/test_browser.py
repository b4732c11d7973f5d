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
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the module (each test makes its own charges): starting one
    takes seconds, and the browser tests only read what they create."""
    running = start_server(tmp_path_factory.mktemp("browser") / "server")
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


@pytest.fixture
def browsing(browser: Any) -> Iterator[Browsing]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, locale="pt-BR")
    context.add_init_script(WATCH_CSP)
    session = Browsing(context)
    try:
        yield session
        session.check_clean()
    finally:
        context.close()


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
