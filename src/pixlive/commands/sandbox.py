"""What `pixlive serve` keeps for the sandbox between starts, beside the database: its API
key (printed on every start, until `pixlive apikey revoke sandbox`) and the URL it serves
at (so that `pixlive simulate-payment` finds a server started with another port)."""

from __future__ import annotations

from pathlib import Path

from pixlive import sandbox_files
from pixlive.settings import Settings

SANDBOX_KEY_NAME = "sandbox"


def key_file(settings: Settings) -> Path:
    return sandbox_files.state_dir(settings.database_url) / sandbox_files.KEY_FILE


def url_file(settings: Settings) -> Path:
    return sandbox_files.state_dir(settings.database_url) / sandbox_files.URL_FILE


def kept_key(settings: Settings) -> str | None:
    return sandbox_files.read(key_file(settings))


def keep_key(settings: Settings, key: str) -> None:
    if kept_key(settings) != key:
        sandbox_files.write_private(key_file(settings), key, replace=True)


def public_url_is_set(settings: Settings) -> bool:
    return "public_url" in settings.model_fields_set


def local_url(scheme: str, host: str, port: int) -> str:
    """The URL a browser on this machine opens: a wildcard address is not one to open."""
    if host in ("0.0.0.0", "", "::", "[::]"):
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def record_url(settings: Settings, url: str) -> None:
    sandbox_files.write_private(url_file(settings), url, replace=True)


def recorded_url(settings: Settings) -> str | None:
    return sandbox_files.read(url_file(settings))
