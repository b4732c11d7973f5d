"""What FastAPI cannot say about the API in the generated OpenAPI document: the optional key
of the public read, the live streams' messages as schemas, the WebSocket route (OpenAPI has
no WebSocket operation: it is written as the GET that upgrades), and a description on every
operation that lacks one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from pixlive.api.models import EventOut, SnapshotOut

CHARGE = "/payments/pix/{payment_id}"
BEARER = "HTTPBearer"

_EVENT = {"$ref": "#/components/schemas/EventOut"}
_SNAPSHOT = {"$ref": "#/components/schemas/SnapshotOut"}
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}

# "METHOD path" -> description, for the operations whose route gives none.
DESCRIPTIONS = {
    "POST /payments/pix": "Creates an ACTIVE charge and its BR Code. `value` is a string with "
    'two decimals ("12.34"). Send an `Idempotency-Key` to make a retry safe.',
    "GET /payments/pix": "The merchant's charges, newest first, optionally of one `status`; "
    "`next_cursor` fetches the next page.",
    f"POST {CHARGE}/cancel": "ACTIVE → CANCELLED, with a `payment.cancelled` event; 409 when the "
    "charge is already final.",
    f"GET {CHARGE}": "Public, by id (the id is the secret): the payment page for a browser "
    "(`Accept: text/html`), else the charge as JSON. With the merchant's API key, the merchant's "
    "view (payer, metadata).",
    f"GET {CHARGE}/qrcode.svg": "The QR code of the charge's Pix Copia e Cola (SVG).",
    f"GET {CHARGE}/qrcode.png": "The QR code of the charge's Pix Copia e Cola (PNG).",
    f"GET {CHARGE}/events": "Server-Sent Events of one charge: `event: snapshot` (a SnapshotOut), "
    "then each event (`id: N`, `event: <type>`, `data:` an EventOut); ends after a final event. "
    "Resumes after `Last-Event-ID` (or `?after=`). A `: keepalive` comment at least every 20 s.",
    f"GET {CHARGE}/poll": "Long poll: the snapshot and the events after `after`, at once when "
    "there are some (or the charge is final), else after the first one or `timeout` seconds.",
    f"GET {CHARGE}/ws": "WebSocket (send an upgrade request): one JSON text frame per message, "
    "a SnapshotOut then each EventOut; close 1000 after a final event, 1012 when the server "
    "shuts down, 1013 when over a limit. `?after=N` resumes after event N.",
    "GET /events": "Every event of the merchant's charges as Server-Sent Events (each `data:` "
    "an EventOut), resuming after `Last-Event-ID`; with `Accept: application/json`, the last 30 "
    "days as a paginated list.",
    "POST /payments/pix/confirmation": "The PSP's webhook, in the API Pix's format "
    '(`{"pix": [...]}`), authenticated by signature, token or mTLS: one outcome per Pix.',
    "GET /healthz": "The process is alive.",
    "GET /readyz": "The database can commit and the bus is reachable.",
    "GET /metrics": "Prometheus metrics.",
}

_WEBSOCKET: dict[str, Any] = {
    "get": {
        "tags": ["streams"],
        "summary": "WebSocket: live events of one charge",
        "operationId": "websocket_stream",
        "parameters": [
            {"name": "payment_id", "in": "path", "required": True, "schema": {"type": "string"}},
            {
                "name": "after",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
            },
        ],
        "responses": {
            "101": {
                "description": "Switching Protocols: then a SnapshotOut and EventOut frames",
                "content": {"application/json": {"schema": {"anyOf": [_SNAPSHOT, _EVENT]}}},
            },
            "404": {"description": "No such charge", "content": _ERROR},
            "422": {"description": "`after` out of range", "content": _ERROR},
        },
    }
}


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Completes `document` (FastAPI's, generated) in place; returns it."""
    paths: dict[str, Any] = document.setdefault("paths", {})
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in _schemas(EventOut, SnapshotOut).items():
        schemas.setdefault(name, schema)
    paths.setdefault(f"{CHARGE}/ws", _WEBSOCKET)
    public = paths.get(CHARGE, {}).get("get")
    if public is not None:
        # `{}` first: no key is needed; with one, the answer is the merchant's view.
        public["security"] = [{}, {BEARER: []}]
    for path, methods in paths.items():
        for method, operation in methods.items():
            described = DESCRIPTIONS.get(f"{method.upper()} {path}")
            if described and not operation.get("description"):
                operation["description"] = described
            elif not operation.get("description"):
                operation["description"] = operation.get("summary", "")
    return document
