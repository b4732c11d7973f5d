"""`pixlive psp-emulator pay CODE`: what a payer's bank app does with a Pix Copia e Cola.

It reads the code; for a dynamic one it fetches the location over HTTPS, checks the JWS
signature and that the signing certificate is the PSP's, and takes the txid and amount from
the payload; then it sends the Pix, which the emulated PSP receives and notifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pixlive.domain.money import format_amount, parse_amount
from pixlive.emulator import jws
from pixlive.emulator.brcode import read_brcode


class PayError(Exception):
    """The code cannot be paid; the message says why, as a bank app would."""


@dataclass(frozen=True)
class Payment:
    txid: str | None
    valor: str
    pix: dict[str, Any]


def pay(code: str, *, ca: Path | None, value: str | None = None, url: str | None = None) -> Payment:
    try:
        read = read_brcode(code)
    except ValueError as exc:
        raise PayError(f"not a valid Pix code: {exc}") from exc
    verify: Any = str(ca) if ca else True
    txid = read.txid
    amount = read.amount
    if read.location is not None:
        try:
            answer = httpx.get(f"https://{read.location}", verify=verify, timeout=10)
        except httpx.HTTPError as exc:
            raise PayError(f"cannot fetch the charge at {read.location}: {exc}") from exc
        if answer.status_code != 200:
            raise PayError(f"the charge cannot be paid ({answer.status_code}): {answer.text}")
        try:
            payload, cert = jws.verify(answer.text)
        except jws.JwsError as exc:
            raise PayError(f"the charge's signature is not valid: {exc}") from exc
        if ca is not None and not jws.issued_by(cert, ca.read_bytes()):
            raise PayError("the charge is signed by a certificate the PSP's CA did not issue")
        if payload.get("status") != "ATIVA":
            raise PayError(f"the charge is {payload.get('status')}, not payable")
        txid = str(payload["txid"])
        amount = parse_amount(payload["valor"]["original"], strict=True)
        if url is None:
            url = "https://" + read.location.split("/", 1)[0]
    if value is not None:
        amount = parse_amount(value)
    if amount is None:
        raise PayError("the code has no amount: give one with --value")
    if url is None:
        raise PayError("a static code does not say where its PSP is: give --url")
    body: dict[str, Any] = {"valor": format_amount(amount), "chave": read.key, "txid": txid}
    try:
        answer = httpx.post(
            url.rstrip("/") + "/_emulator/pay", json=body, verify=verify, timeout=10
        )
    except httpx.HTTPError as exc:
        raise PayError(f"cannot reach the PSP at {url}: {exc}") from exc
    if answer.status_code != 201:
        raise PayError(f"the PSP refused the Pix ({answer.status_code}): {answer.text}")
    return Payment(txid, format_amount(amount), answer.json())
