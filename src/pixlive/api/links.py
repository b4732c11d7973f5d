"""OpenAPI links of the served document: what a client can do next with the charge it was
just given, so that a client (or a stateful fuzzer) reading /openapi.json finds the chain
create → read, cancel, QR code, live events without reading the prose."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from pixlive.api.document import complete

CHARGES = "/payments/pix"
CHARGE = "/payments/pix/{payment_id}"

# Where the charge is in the answer, as the start of a runtime expression (OpenAPI 3.1,
# "Runtime Expressions"): the whole body of a creation, the newest charge of a page.
CREATED = "$response.body#"
FIRST_LISTED = "$response.body#/data/0"

# (link name, path, method, description, more parameters as {parameter: charge field}) of
# the operations that take a charge's id.
_TARGETS: tuple[tuple[str, str, str, str, dict[str, str]], ...] = (
    ("ReadCharge", CHARGE, "get", "The charge: JSON, or the payment page for a browser", {}),
    ("CancelCharge", CHARGE + "/cancel", "post", "Cancel the charge while it is ACTIVE", {}),
    ("QrCodeSvg", CHARGE + "/qrcode.svg", "get", "The charge's QR code (SVG)", {}),
    ("QrCodePng", CHARGE + "/qrcode.png", "get", "The charge's QR code (PNG)", {}),
    # The answer holds the state up to `last_event_id`: only what comes after is news.
    (
        "PollEvents",
        CHARGE + "/poll",
        "get",
        "Wait for the charge's events after this state",
        {"after": "last_event_id"},
    ),
    (
        "StreamEvents",
        CHARGE + "/events",
        "get",
        "Follow the charge's events after this state (Server-Sent Events)",
        {"after": "last_event_id"},
    ),
)
# From the list, only what a merchant does to a charge it found there.
_FROM_LIST = ("ReadCharge", "CancelCharge")


def _links(paths: dict[str, Any], charge: str, names: tuple[str, ...]) -> dict[str, Any]:
    links: dict[str, Any] = {}
    for name, path, method, description, extra in _TARGETS:
        operation = paths.get(path, {}).get(method)
        # A route left out of this document (or renamed) has no link rather than a broken
        # one: a dangling operationId would make the whole document invalid.
        if name not in names or operation is None or "operationId" not in operation:
            continue
        parameters = {"payment_id": f"{charge}/id"}
        parameters.update({param: f"{charge}/{field}" for param, field in extra.items()})
        links[name] = {
            "operationId": operation["operationId"],
            "parameters": parameters,
            "description": description,
        }
    return links


def _add(responses: dict[str, Any], status: str, links: dict[str, Any]) -> None:
    response = responses.get(status)
    if response is not None and links:
        response.setdefault("links", {}).update(links)


def add_links(document: dict[str, Any]) -> dict[str, Any]:
    """Adds the links to `document` (FastAPI's generated OpenAPI) in place; returns it."""
    paths: dict[str, Any] = document.get("paths", {})
    every = tuple(target[0] for target in _TARGETS)
    create = paths.get(CHARGES, {}).get("post")
    if create is not None:
        # The idempotent replay (200) answers the same charge as the first creation (201).
        for status in ("201", "200"):
            _add(create["responses"], status, _links(paths, CREATED, every))
    listing = paths.get(CHARGES, {}).get("get")
    if listing is not None:
        _add(listing["responses"], "200", _links(paths, FIRST_LISTED, _FROM_LIST))
    return document


def install(app: FastAPI) -> None:
    """Serves the document with its links: FastAPI builds it once, on first demand."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        document = app.openapi_schema
        if document is None:
            document = complete(add_links(generate()))
            app.openapi_schema = document
        return document

    # FastAPI's documented way to customise the document: its routes call `app.openapi()`.
    app.openapi = openapi  # type: ignore[method-assign]
