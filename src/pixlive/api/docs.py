"""`/docs`: Swagger UI served from our own origin (FastAPI's default loads it from a CDN,
so a machine that cannot reach one got a blank page). Its files come from the
`swagger-ui-bundle-v2` package, and the page starts it from a script file, not inline, so
that /docs keeps a Content-Security-Policy (api/headers.py, `DOCS_CSP`)."""

from __future__ import annotations

import html
from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"
SWAGGER_UI = Path(swagger_ui_bundle.swagger_ui_path)

# validatorUrl null: the default sends the whole document to a validator on the internet.
_START = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.openapi,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "BaseLayout",
  });
});
"""


def _page(title: str, openapi_url: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} - API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">
</head>
<body data-openapi="{html.escape(openapi_url)}">
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="{ASSETS}/swagger-ui-standalone-preset.js"></script>
<script src="/docs/start.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Adds /docs, its start script and Swagger UI's files (create the app with
    `docs_url=None`, so that FastAPI's CDN page is not there too)."""
    router = APIRouter(include_in_schema=False)
    page = _page(app.title, app.openapi_url or "/openapi.json")

    @router.get("/docs")
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)

    @router.get("/docs/start.js")
    async def start() -> Response:
        return Response(_START, media_type="text/javascript")

    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=SWAGGER_UI), name="docs-assets")
