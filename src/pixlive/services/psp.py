"""What a PSP sends: the signed API Pix webhook body, for the sandbox and the CLI."""

from __future__ import annotations

import secrets
import string
import time
from datetime import UTC, datetime

import orjson

from pixlive.domain.charge import iso
from pixlive.services.signature import HEADER, sign

_ALNUM = string.ascii_letters + string.digits


def new_end_to_end_id(now: datetime | None = None) -> str:
    """E + an 8-digit ISPB + yyyyMMddHHmm + 11 random characters: 32 in all, as in pacs.008."""
    moment = now or datetime.now(UTC)
    tail = "".join(secrets.choice(_ALNUM) for _ in range(11))
    return "E" + "00000000" + moment.strftime("%Y%m%d%H%M") + tail


def webhook_body(txid: str, valor: str, end_to_end_id: str | None = None) -> bytes:
    now = datetime.now(UTC)
    return orjson.dumps(
        {
            "pix": [
                {
                    "endToEndId": end_to_end_id or new_end_to_end_id(now),
                    "txid": txid,
                    "valor": valor,
                    "horario": iso(now),
                    "infoPagador": "pagamento simulado (sandbox)",
                }
            ]
        }
    )


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", HEADER: sign(secret, body, int(time.time()))}
