"""Who is on the other end of a connection: its address (behind a trusted proxy, the one
the proxy names in `X-Forwarded-For`), and the verified TLS client certificate."""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
from typing import Any

from pixlive.api.webhook import ClientCertificate


def certificate(ssl_object: Any) -> ClientCertificate | None:
    """The connection's verified client certificate, if it sent one."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    decoded: Any = ssl_object.getpeercert() or {}
    parts = [
        f"{name}={value}" for rdn in reversed(decoded.get("subject", ())) for name, value in rdn
    ]
    subject = ",".join(_short(part) for part in parts)
    return ClientCertificate(subject, hashlib.sha256(der).hexdigest(), der)


def asgi_tls(cert: ClientCertificate | None) -> dict[str, Any]:
    """The ASGI TLS extension's client fields, with pixlive's fingerprint beside them."""
    if cert is None:
        return {"client_cert_chain": [], "client_cert_name": None, "client_cert_error": None}
    return {
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(cert.der)],
        "client_cert_name": cert.subject,
        "client_cert_error": None,
        "pixlive_client_cert_sha256": cert.fingerprint,
    }


_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "emailAddress": "emailAddress",
}


def _short(part: str) -> str:
    name, _, value = part.partition("=")
    return f"{_SHORT.get(name, name)}={value}"


class TrustedProxies:
    """The addresses whose `X-Forwarded-For` is believed (uvicorn's `forwarded_allow_ips`:
    addresses, networks, or `*`)."""

    __slots__ = ("_any", "_hosts", "_networks")

    def __init__(self, allowed: list[str] | str | None) -> None:
        items = allowed.split(",") if isinstance(allowed, str) else list(allowed or [])
        names = [item.strip() for item in items if item.strip()]
        self._any = "*" in names
        self._hosts: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for name in names:
            try:
                self._networks.append(ipaddress.ip_network(name, strict=False))
            except ValueError:
                self._hosts.add(name)

    def __contains__(self, host: str | None) -> bool:
        if host is None:
            return False
        if self._any or host in self._hosts:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def client(self, peer: str | None, forwarded_for: bytes | None) -> str | None:
        """The client: the nearest address in the chain that is not a trusted proxy."""
        if forwarded_for is None or peer not in self:
            return peer
        chain = [item.strip() for item in forwarded_for.decode("latin-1").split(",")]
        for host in reversed(chain):
            if host and host not in self:
                return host
        return chain[0] or peer if chain else peer
