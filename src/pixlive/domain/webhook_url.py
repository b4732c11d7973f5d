"""Which URLs an endpoint may have, and which addresses a delivery may connect to.

In production a merchant's endpoint is a public https URL: an address that is loopback,
private, link-local (the clouds' metadata service at 169.254.169.254), shared (CGNAT),
multicast or reserved would let a merchant make the server call into its own network.
The same address rule is applied again to what the name resolves to at delivery time, since
DNS may answer differently then (rebinding).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class UrlPolicy:
    """`public_only`: production without PIXLIVE_WEBHOOK_ALLOW_PRIVATE=1."""

    https_only: bool
    public_only: bool


class RefusedUrl(ValueError):
    """The URL, or an address it resolves to, is not one a delivery may go to."""


def is_public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # `is_global` is False for loopback, private, link-local, shared (100.64/10), reserved
    # and documentation ranges; multicast is refused on its own.
    return address.is_global and not address.is_multicast


def check_address(address: Address, policy: UrlPolicy) -> None:
    if policy.public_only and not is_public(address):
        raise RefusedUrl(f"{address} is not a public address")


def literal_address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_url(url: str, policy: UrlPolicy) -> str:
    """The host of a URL the policy accepts; RefusedUrl with the reason otherwise. A name
    is only checked here as far as it can be without resolving it (`localhost`)."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise RefusedUrl("the URL is not valid") from exc
    if parts.scheme not in ("http", "https"):
        raise RefusedUrl("the URL must start with https:// (or http:// in the sandbox)")
    if policy.https_only and parts.scheme != "https":
        raise RefusedUrl("in production the URL must start with https://")
    host = parts.hostname
    if not host:
        raise RefusedUrl("the URL has no host")
    if parts.username or parts.password:
        raise RefusedUrl("the URL must not carry a user or password")
    address = literal_address(host)
    if address is not None:
        check_address(address, policy)
    elif policy.public_only and (host == "localhost" or host.endswith(".localhost")):
        raise RefusedUrl(f"{host} is not a public address")
    return host
