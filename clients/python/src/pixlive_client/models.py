"""The records the API returns, typed; each keeps the JSON it came from in `raw`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Charge:
    id: str
    status: str
    value: str
    description: str | None
    created_at: str
    expires_at: str
    paid_at: str | None
    end_to_end_id: str | None
    pix_copia_e_cola: str
    qr_code_url: str
    payment_url: str
    last_event_id: int
    metadata: dict[str, str] = field(default_factory=dict)
    payer: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Charge:
        return cls(
            id=data["id"],
            status=data["status"],
            value=data["value"],
            description=data.get("description"),
            created_at=data["created_at"],
            expires_at=data["expires_at"],
            paid_at=data.get("paid_at"),
            end_to_end_id=data.get("end_to_end_id"),
            pix_copia_e_cola=data.get("pix_copia_e_cola", ""),
            qr_code_url=data.get("qr_code_url", ""),
            payment_url=data.get("payment_url", ""),
            last_event_id=int(data.get("last_event_id", 0)),
            metadata=dict(data.get("metadata") or {}),
            payer=data.get("payer"),
            raw=data,
        )


@dataclass(frozen=True)
class ChargePage:
    data: list[Charge]
    next_cursor: str | None


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    payment_id: str
    status: str
    at: str
    data: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        return cls(
            id=int(data["id"]),
            type=data["type"],
            payment_id=data.get("payment_id") or "",
            status=data.get("status") or "",
            at=data["at"],
            data=dict(data.get("data") or {}),
        )
