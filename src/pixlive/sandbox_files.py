"""The sandbox's own files (its webhook secret, its API key, the URL it serves at), kept
beside the database: every command that uses the same database finds the same ones,
from whatever directory it is run."""

from __future__ import annotations

import os
from pathlib import Path

SECRET_FILE = ".pixlive-sandbox-secret"  # noqa: S105 - a file name, not a secret
KEY_FILE = ".pixlive-sandbox-key"
URL_FILE = ".pixlive-sandbox-url"


def state_dir(database_url: str) -> Path:
    """The directory of a SQLite database file; the current directory for anything else
    (PostgreSQL, an in-memory SQLite)."""
    for prefix in ("sqlite+aiosqlite:///", "sqlite+pysqlite:///", "sqlite:///"):
        if database_url.startswith(prefix):
            path = database_url[len(prefix) :].split("?", 1)[0]
            if path and path != ":memory:":
                return Path(path).resolve().parent
    return Path.cwd()


def read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def write_private(path: Path, value: str, *, replace: bool) -> str:
    """Writes `value` readable by its owner only, whole (under a temporary name, then moved
    or linked into place). Without `replace`, a file that another process wrote first wins
    and its value is returned."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    try:
        if replace:
            os.replace(temporary, path)
            return value
        try:
            os.link(temporary, path)
        except FileExistsError:
            return read(path) or value
        return value
    finally:
        temporary.unlink(missing_ok=True)
