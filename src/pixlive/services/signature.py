"""The webhook signature: `Pixlive-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`.

The MAC covers `f"{t}."` followed by the raw body, so neither the body nor the time can be
changed without the secret, and a capture replayed after the tolerance is refused.
"""

from __future__ import annotations

import hmac

HEADER = "Pixlive-Signature"


def mac(secret: str, timestamp: int, body: bytes) -> str:
    # hmac.digest is OpenSSL's one-shot HMAC: a fraction of hmac.new()'s Python-level cost
    return hmac.digest(secret.encode(), b"%d.%s" % (timestamp, body), "sha256").hex()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={mac(secret, timestamp, body)}"


class SignatureError(Exception):
    """Why a signature was refused (said to the sender: it reveals nothing of the secret)."""


def verify(secret: str, header: str | None, body: bytes, now: float, tolerance: int) -> None:
    if not header:
        raise SignatureError(f"missing {HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        # ASCII digits only: str.isdigit() also says yes to "²" (which int() refuses, a 500)
        # and to other scripts' digits (which are not what the sender signed).
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError(f"malformed {HEADER} header")
    if abs(now - timestamp) > tolerance:
        raise SignatureError("signature timestamp outside the tolerance")
    expected = mac(secret, timestamp, body)
    # Several v1 values let a sender sign with an old and a new secret during a rotation.
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("signature does not match")


def verify_token(secret: str, token: str | None) -> None:
    if not token or not hmac.compare_digest(secret.encode(), token.encode()):
        raise SignatureError("missing or wrong hmac token")
