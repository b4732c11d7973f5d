"""Compact JWS (RFC 7515) with RS256, as the location endpoint answers a charge.

The Pix security manual has the PSP sign the payload with the key of its TLS certificate
and name that certificate in the header (`x5c`), so that the payer's app can check both
the signature and that it chains to a CA it trusts.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, cast

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class JwsError(Exception):
    """A JWS that is malformed or whose signature does not verify."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(payload: dict[str, Any], key_pem: bytes, cert_pem: bytes) -> str:
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise JwsError("RS256 needs an RSA key")
    cert = x509.load_pem_x509_certificate(cert_pem)
    der = cert.public_bytes(serialization.Encoding.DER)
    header = {
        "alg": "RS256",
        "typ": "JWS",
        "kid": _b64(hashlib.sha256(der).digest())[:16],
        "x5c": [base64.b64encode(der).decode()],
        "x5t#S256": _b64(hashlib.sha256(der).digest()),
    }
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def verify(token: str) -> tuple[dict[str, Any], x509.Certificate]:
    """The payload and the certificate that signed it (from `x5c`); the caller decides
    whether that certificate is one to trust."""
    try:
        head, body, signature = token.strip().split(".")
        header = orjson.loads(_unb64(head))
        if header.get("alg") != "RS256":
            raise JwsError(f"unsupported alg {header.get('alg')!r}")
        cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
        public = cert.public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            raise JwsError("the x5c certificate has no RSA key")
        public.verify(
            _unb64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        payload = orjson.loads(_unb64(body))
    except InvalidSignature as exc:
        raise JwsError("the signature does not verify") from exc
    except (ValueError, KeyError, IndexError, TypeError, orjson.JSONDecodeError) as exc:
        raise JwsError(f"malformed JWS: {exc}") from exc
    if not isinstance(payload, dict):
        raise JwsError("the payload is not a JSON object")
    return cast(dict[str, Any], payload), cert


def issued_by(cert: x509.Certificate, ca_pem: bytes) -> bool:
    """Whether `cert` carries a valid signature of the CA in `ca_pem` (one level: the
    emulator's CA signs its server certificate directly)."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
