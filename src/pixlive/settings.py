"""All settings, from the environment (prefix PIXLIVE_) and an optional .env file."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SANDBOX_PIX_KEY = "sandbox@pixlive.example"
SANDBOX_MERCHANT_NAME = "Loja Sandbox pixlive"
SANDBOX_MERCHANT_CITY = "Sao Paulo"
SANDBOX_SECRET_FILE = ".pixlive-sandbox-secret"  # noqa: S105 - a file name, not a secret


class MissingSettings(Exception):
    """Production mode without a setting it cannot do without."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PIXLIVE_", env_file=".env", extra="ignore", frozen=True
    )

    env: Literal["sandbox", "production"] = "sandbox"
    database_url: str = "sqlite+aiosqlite:///./pixlive.db"
    bus_url: str = "memory://"
    webhook_secret: SecretStr | None = None
    webhook_auth: Literal["signature", "token"] = "signature"
    webhook_tolerance_seconds: int = Field(300, ge=1)
    pix_key: str | None = None
    merchant_name: str | None = None
    merchant_city: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    expiry_sweep_seconds: float = Field(1.0, gt=0)
    log_level: str = "info"
    max_subscribers_per_charge: int = Field(20, ge=1)
    # Mobile carriers put many payers behind one address (CGNAT): keep the per-address cap
    # well above what one household or office would open.
    max_streams_per_client: int = Field(500, ge=1)
    max_streams_total: int = Field(50_000, ge=1)
    create_rate_per_second: float = Field(200.0, gt=0)
    create_burst: int = Field(400, ge=1)
    sse_keepalive_seconds: float = Field(15.0, gt=0, le=20)
    # A WebSocket ping per interval; a client silent for a whole interval after one is gone.
    ws_ping_seconds: float = Field(20.0, gt=0, le=60)

    @field_validator("webhook_secret", "pix_key", "merchant_name", "merchant_city", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `PIXLIVE_PIX_KEY=` in a .env template means "not set", not "an empty key": so
        # production refuses it by name, and the sandbox fills in its default.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @property
    def sandbox(self) -> bool:
        return self.env == "sandbox"

    def missing_for_production(self) -> list[str]:
        names = ("webhook_secret", "pix_key", "merchant_name", "merchant_city")
        return [f"PIXLIVE_{name.upper()}" for name in names if not getattr(self, name)]

    def check(self) -> None:
        """Refuses production mode without its secrets; names what is missing, never values."""
        if self.env == "production":
            missing = self.missing_for_production()
            if missing:
                raise MissingSettings("production mode needs these settings: " + ", ".join(missing))

    @cached_property
    def secret(self) -> str:
        """The webhook secret: the configured one, or in sandbox mode one generated once and
        kept in a local file, so that `pixlive simulate-payment` signs with the same one."""
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value()
        if not self.sandbox:
            raise MissingSettings("PIXLIVE_WEBHOOK_SECRET is not set")
        path = Path(SANDBOX_SECRET_FILE)
        if path.exists():
            return path.read_text().strip()
        value = "whsec_sandbox_" + secrets.token_urlsafe(24)
        # Written whole under a temporary name, then linked into place: another process
        # starting at the same moment either wins (and we read its secret) or reads ours
        # complete, never half-written.
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            value = path.read_text().strip()
        finally:
            temporary.unlink()
        return value

    @property
    def receiver_pix_key(self) -> str:
        return self.pix_key or SANDBOX_PIX_KEY

    @property
    def receiver_name(self) -> str:
        return self.merchant_name or SANDBOX_MERCHANT_NAME

    @property
    def receiver_city(self) -> str:
        return self.merchant_city or SANDBOX_MERCHANT_CITY

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/")
