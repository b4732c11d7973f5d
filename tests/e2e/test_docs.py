"""`/docs` renders every operation with no network beyond our own server: Swagger UI's files
come from our origin (a machine that cannot reach a CDN used to get a blank page), and its
Content-Security-Policy holds (no inline script)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.e2e.conftest import Server
from tests.e2e.test_browser import WATCH_CSP, browser

__all__ = ["browser"]  # the Chromium fixture, shared with the page's tests


def test_docs_render_every_operation_offline(browser: Any, shared_server: Server) -> None:
    document = shared_server.http.get("/openapi.json").json()
    operations = {
        f"{method.upper()} {path}"
        for path, methods in document["paths"].items()
        for method in methods
    }
    ours = urlsplit(shared_server.url).netloc
    outside: list[str] = []
    context = browser.new_context()
    try:
        page = context.new_page()

        def only_ours(route: Any) -> None:
            # Anything not for our server is refused, as on a machine with no internet.
            if urlsplit(route.request.url).netloc == ours:
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_ours)
        page.add_init_script(WATCH_CSP)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        answer = page.goto(shared_server.url + "/docs")
        assert answer is not None and answer.status == 200
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        page.wait_for_selector(".opblock", timeout=20_000)
        shown = {
            block.get_attribute("data-method-path")
            or (
                block.locator(".opblock-summary-method").inner_text().strip().upper()
                + " "
                + block.locator(".opblock-summary-path").get_attribute("data-path")
            )
            for block in page.locator(".opblock").all()
        }
        assert shown == operations, (sorted(operations - shown), sorted(shown - operations))
        # The title and the description of the document are on the page too.
        assert document["info"]["title"] in page.locator(".info .title").inner_text()
        assert outside == [], outside
        assert page.evaluate("window.__csp") == []
        assert errors == []
    finally:
        context.close()


def test_the_assets_are_ours(shared_server: Server) -> None:
    page = shared_server.http.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "<script>" not in page.text
    for path in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        asset = shared_server.http.get(path)
        assert asset.status_code == 200 and len(asset.content) > 10_000, path


def test_the_document_describes_every_operation_and_the_streams(shared_server: Server) -> None:
    document = shared_server.http.get("/openapi.json").json()
    paths = document["paths"]
    for path, methods in paths.items():
        for method, operation in methods.items():
            assert operation.get("description"), f"{method.upper()} {path} has no description"
    # The public read needs no key (`{}`); with one, it is the merchant's view.
    assert paths["/payments/pix/{payment_id}"]["get"]["security"] == [{}, {"HTTPBearer": []}]
    assert paths["/payments/pix"]["post"]["security"] == [{"HTTPBearer": []}]
    # The events every stream carries, as schemas; the WebSocket and SSE routes say so.
    schemas = document["components"]["schemas"]
    assert {"EventOut", "SnapshotOut"} <= set(schemas)
    assert "payment.paid" in schemas["EventOut"]["properties"]["type"]["enum"]
    ws = paths["/payments/pix/{payment_id}/ws"]["get"]
    assert "101" in ws["responses"] and "WebSocket" in ws["description"]
    assert "EventOut" in paths["/payments/pix/{payment_id}/events"]["get"]["description"]
    # The creation's request and answer have examples, and the example is a valid request.
    example = schemas["ChargeCreate"]["examples"][0]
    assert schemas["ChargeOut"]["examples"][0]["value"] == "12.34"
    created = shared_server.http.post("/payments/pix", json=example, headers=shared_server.auth)
    assert created.status_code == 201, created.text
