"""All settings, from the environment (prefix PIXLIVE_) and an optional .env file.

Strict on purpose: a misspelt variable (`PIXLIVE_BUS_ULR`) would otherwise be ignored in
silence, and a process would run with the default instead of what the operator meant.
"""

from __future__ import annotations

import difflib
import os
import secrets
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Literal, Self

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pixlive import sandbox_files

SANDBOX_PIX_KEY = "sandbox@pixlive.example"
SANDBOX_MERCHANT_NAME = "Loja Sandbox pixlive"
SANDBOX_MERCHANT_CITY = "Sao Paulo"
SANDBOX_SECRET_FILE = sandbox_files.SECRET_FILE

ENV_PREFIX = "PIXLIVE_"
# The tests' and the bench's own variables: not settings of the server, so the check of
# unknown names leaves them alone. New tooling variables take one of these prefixes.
TOOLING_PREFIXES = ("PIXLIVE_TEST_", "PIXLIVE_BENCH_")
TOOLING_NAMES = frozenset({"PIXLIVE_REQUIRE_SERVICES", "PIXLIVE_UPDATE_SCREENSHOTS"})
PRODUCTION_REQUIRED = ("webhook_secret", "pix_key", "merchant_name", "merchant_city")
MIN_SECRET_LENGTH = 32


class ConfigurationError(Exception):
    """A setting is wrong: said in one line, naming the setting, never showing a secret."""


class MissingSettings(ConfigurationError):
    """Production mode without a setting it cannot do without."""


class UnknownSetting(ConfigurationError):
    """A PIXLIVE_* variable that no setting has."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        # `PIXLIVE_PIX_KEY=` in a .env template means "not set", not "an empty key"; and
        # one of spaces is no value either (see `missing_for_production`).
        env_ignore_empty=True,
        str_strip_whitespace=True,
        # Unknown names are refused by `check_names` (for `serve` and `migrate`), with the
        # closest known one; here they would be refused without that hint.
        extra="ignore",
        frozen=True,
    )

    env: Literal["sandbox", "production"] = "sandbox"
    database_url: str = "sqlite+aiosqlite:///./pixlive.db"
    bus_url: str = "memory://"
    webhook_secret: SecretStr | None = None
    webhook_auth: Literal["signature", "token", "mtls"] = "signature"
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
    # How long the bus may be quiet before the events table is read for what it did not
    # bring (a publisher that died after COMMIT, a partitioned connection); 0 turns it off.
    relay_seconds: float = Field(0.5, ge=0, le=2)
    # Merchant webhooks: in production only to public https URLs, unless allowed here;
    # the retry schedule shrunk by a factor (the sandbox only: tests and demos).
    webhook_allow_private: bool = False
    webhook_retry_scale: float = Field(1.0, gt=0, le=1)
    webhook_concurrency: int = Field(64, ge=1)
    webhook_endpoint_concurrency: int = Field(4, ge=1)
    # The payer's page: the merchant's logo, a file that pixlive serves itself (so that the
    # page loads nothing from another origin), and the seconds after payment before the page
    # goes back to the charge's return_url on its own (0: it never does).
    merchant_logo_url: str | None = None
    return_redirect_seconds: int = Field(0, ge=0, le=60)
    # The merchant's PSP (DESIGN.md "Connecting a PSP"; docs/psp.md). With `apipix` the
    # webhook is authenticated by the PSP's verified client certificate unless told otherwise.
    psp: Literal["none", "apipix"] = "none"
    psp_api_url: str | None = None
    psp_token_url: str | None = None
    psp_client_id: str | None = None
    psp_client_secret: SecretStr | None = None
    psp_cert: str | None = None
    psp_key: str | None = None
    psp_ca: str | None = None
    psp_profile: Literal["standard", "efi", "inter"] = "standard"
    psp_timeout_seconds: float = Field(10.0, gt=0)
    reconcile_seconds: float = Field(60.0, ge=0)
    webhook_client_cn: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _apipix_defaults_to_mtls(cls, data: object) -> object:
        if isinstance(data, dict) and str(data.get("psp", "")).strip() == "apipix":
            data.setdefault("webhook_auth", "mtls")
        return data

    @model_validator(mode="after")
    def _apipix_has_what_it_needs(self) -> Self:
        if self.psp != "apipix":
            return self
        needed = ("psp_api_url", "psp_client_id", "psp_client_secret")
        missing = [env_name(name) for name in needed if not getattr(self, name)]
        if missing:
            raise ValueError("PIXLIVE_PSP=apipix needs these settings: " + ", ".join(missing))
        if bool(self.psp_cert) != bool(self.psp_key):
            raise ValueError("PIXLIVE_PSP_CERT and PIXLIVE_PSP_KEY go together")
        return self

    # The public edge (docs/security.md): the request head as nginx bounds it by default,
    # time limits, and the connections one process holds.
    max_request_line_bytes: int = Field(8192, ge=256)
    max_header_bytes: int = Field(8192, ge=256)
    max_headers_bytes: int = Field(32768, ge=1024)
    max_headers: int = Field(100, ge=8)
    head_timeout_seconds: float = Field(10.0, gt=0)
    body_timeout_seconds: float = Field(10.0, gt=0)
    keepalive_timeout_seconds: float = Field(5.0, gt=0)
    max_connections: int = Field(60_000, ge=1)
    # Comma-separated origins whose pages may open a charge's WebSocket or SSE; unset: the
    # public URL's origin (and requests with no Origin, which no browser page sends).
    allowed_origins: str | None = None

    @model_validator(mode="after")
    def _production_has_what_it_needs(self) -> Self:
        if self.env != "production":
            return self
        missing = self.missing_for_production()
        if missing:
            raise ValueError("production mode needs these settings: " + ", ".join(missing))
        assert self.webhook_secret is not None
        if len(self.webhook_secret.get_secret_value().strip()) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"PIXLIVE_WEBHOOK_SECRET must be at least {MIN_SECRET_LENGTH} characters "
                "in production mode (`openssl rand -hex 32` makes one)"
            )
        return self

    @classmethod
    def load(cls, **values: object) -> Settings:
        """The settings, or a `ConfigurationError` that says in one line what is wrong."""
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ValidationError as exc:
            raise ConfigurationError(describe(exc)) from None

    @property
    def sandbox(self) -> bool:
        return self.env == "sandbox"

    def missing_for_production(self) -> list[str]:
        missing = []
        for name in PRODUCTION_REQUIRED:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value().strip()
            if not value:
                missing.append(env_name(name))
        return missing

    @cached_property
    def secret(self) -> str:
        """The webhook secret: the configured one, or in sandbox mode one generated once and
        kept in a local file, so that `pixlive simulate-payment` signs with the same one."""
        if self.webhook_secret is not None and self.webhook_secret.get_secret_value().strip():
            return self.webhook_secret.get_secret_value()
        if not self.sandbox:
            raise MissingSettings("PIXLIVE_WEBHOOK_SECRET is not set")
        found = sandbox_files.read(self.secret_file)
        if found:
            return found
        # Another process starting at the same moment either wins (and we read its secret)
        # or reads ours complete, never half-written.
        value = "whsec_sandbox_" + secrets.token_urlsafe(24)
        return sandbox_files.write_private(self.secret_file, value, replace=False)

    @property
    def secret_file(self) -> Path:
        """Where the sandbox keeps its generated webhook secret: beside the database."""
        return sandbox_files.state_dir(self.database_url) / SANDBOX_SECRET_FILE

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


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def known_names() -> list[str]:
    """Every PIXLIVE_* variable that a setting reads: derived from the fields, so a setting
    added to the class is known without being listed anywhere else."""
    return [env_name(name) for name in Settings.model_fields]


def _is_tooling(name: str) -> bool:
    return name in TOOLING_NAMES or name.startswith(TOOLING_PREFIXES)


def unknown_names(names: Iterable[str]) -> list[str]:
    """The PIXLIVE_* names among `names` that no setting reads, each with a hint."""
    known = known_names()
    found = []
    for raw in names:
        name = raw.upper()  # pydantic-settings reads names case-insensitively
        if not name.startswith(ENV_PREFIX) or name in known or _is_tooling(name):
            continue
        closest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" (did you mean {closest[0]}?)" if closest else ""
        found.append(f"{raw}{hint}")
    return sorted(found)


def check_names(
    environ: Mapping[str, str] | None = None, env_file: Path | str | None = None
) -> None:
    """Refuses unknown PIXLIVE_* variables in the environment and in the .env file."""
    environ = os.environ if environ is None else environ
    where = [("the environment", list(environ))]
    path = Path(env_file if env_file is not None else str(Settings.model_config.get("env_file")))
    if path.is_file():
        where.append((str(path), list(dotenv_values(path))))
    problems: list[str] = []
    for place, names in where:
        problems.extend(f"{name} in {place}" for name in unknown_names(names))
    if problems:
        raise UnknownSetting("unknown setting " + "; ".join(problems))


def describe(exc: ValidationError) -> str:
    """One line for pydantic's errors: the variable's name and what is wrong with it. The
    value is shown only for settings that are not secret, and only when it is short."""
    parts = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:
            parts.append(message)
            continue
        field = str(error["loc"][0])
        value = error.get("input")
        shown = ""
        if "secret" not in field and isinstance(value, str) and len(value) <= 80:
            shown = f" (got {value!r})"
        parts.append(f"{env_name(field)}: {message[:1].lower()}{message[1:]}{shown}")
    return "; ".join(parts)
