"""One webhook attempt over HTTP with httpx: a POST with a 15 s timeout, no redirects, no
proxy from the environment, and the first KiB of the answer kept for the delivery log.

Where only public addresses are allowed (production), the name is resolved here and every
address it gives is checked; the request then goes to the address that was checked (the
name still in the Host header and the TLS server name), so that DNS cannot answer one thing
to the check and another to the connection.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import httpx

from pixlive import __version__
from pixlive.domain.webhook_delivery import RESPONSE_KEPT, Answer
from pixlive.domain.webhook_url import (
    Address,
    RefusedUrl,
    UrlPolicy,
    check_address,
    check_url,
    literal_address,
)

TIMEOUT = 15.0
Resolve = Callable[[str, int], Awaitable[list[Address]]]


async def resolve(host: str, port: int) -> list[Address]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    found: list[Address] = []
    for info in infos:
        address = literal_address(str(info[4][0]))
        if address is not None and address not in found:
            found.append(address)
    return found


async def pinned(url: str, policy: UrlPolicy, resolver: Resolve) -> tuple[str, str | None]:
    """The URL to connect to (the name replaced by its checked address) and the name to keep
    in the Host header; RefusedUrl when the URL or an address of its name is refused."""
    host = check_url(url, policy)
    if not policy.public_only or literal_address(host) is not None:
        return url, None
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolver(host, port)
    except OSError as exc:
        raise RefusedUrl(f"{host} does not resolve") from exc
    if not addresses:
        raise RefusedUrl(f"{host} does not resolve")
    for address in addresses:
        check_address(address, policy)
    first = addresses[0]
    literal = f"[{first}]" if first.version == 6 else str(first)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), parts.netloc.rsplit("@", 1)[-1]


class HttpSender:
    def __init__(
        self,
        policy: UrlPolicy,
        *,
        timeout: float = TIMEOUT,
        max_connections: int = 100,
        resolver: Resolve = resolve,
    ) -> None:
        self.policy = policy
        self.timeout = timeout
        self.resolver = resolver
        self.client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=50),
            headers={"user-agent": f"pixlive-webhooks/{__version__}"},
        )

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> Answer:
        started = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000

        try:
            target, host = await pinned(url, self.policy, self.resolver)
        except RefusedUrl as exc:
            return Answer(None, f"refused: {exc}", elapsed(), "")
        extensions: dict[str, str] = {}
        if host is not None:
            headers = {**headers, "host": host}
            extensions["sni_hostname"] = host.rsplit(":", 1)[0] if "]" not in host else host
        try:
            async with self.client.stream(
                "POST", target, content=body, headers=headers, extensions=extensions
            ) as response:
                kept = bytearray()
                async for chunk in response.aiter_bytes():
                    kept.extend(chunk)
                    if len(kept) >= RESPONSE_KEPT:
                        break
                return Answer(
                    response.status_code,
                    None,
                    elapsed(),
                    kept[:RESPONSE_KEPT].decode("utf-8", "replace"),
                    response.headers.get("retry-after"),
                )
        except httpx.TimeoutException:
            return Answer(None, f"timeout after {self.timeout:g} s", elapsed(), "")
        except (httpx.HTTPError, OSError) as exc:
            return Answer(None, f"{type(exc).__name__}: {exc}"[:300], elapsed(), "")

    async def close(self) -> None:
        await self.client.aclose()
