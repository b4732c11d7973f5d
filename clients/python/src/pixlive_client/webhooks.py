"""Verifying a pixlive webhook as the Standard Webhooks specification says: an HMAC-SHA256
of "{webhook-id}.{webhook-timestamp}.{body}" with the endpoint's secret, base64, among the
space-separated `v1,` signatures of `webhook-signature`; refused outside the tolerance."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from pixlive_client.errors import WebhookVerificationError

TOLERANCE = 300  # seconds either side of now


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise WebhookVerificationError("the secret is not whsec_ followed by base64") from exc


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: int = TOLERANCE,
    now: float | None = None,
) -> dict[str, Any]:
    """The webhook's JSON, once its signature and time are checked; raises
    WebhookVerificationError otherwise. `body` must be the raw bytes as received."""
    raw = body.encode() if isinstance(body, str) else body
    lower = {name.lower(): value for name, value in headers.items()}
    msg_id = lower.get("webhook-id")
    timestamp = lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or signature")
    try:
        sent = int(timestamp)
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not a number") from exc
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    signed = f"{msg_id}.{sent}.".encode() + raw
    expected = base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest())
    for entry in signatures.split(" "):
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            parsed: dict[str, Any] = json.loads(raw)
            return parsed
    raise WebhookVerificationError("no signature matches the secret")
