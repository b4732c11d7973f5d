"""`pixlive migrate`: bring the schema to the newest revision with Alembic."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory


def alembic_url(database_url: str) -> str:
    """The async SQLAlchemy URL Alembic's environment needs, from any URL we accept."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if database_url.startswith(plain):
            return driver + database_url[len(plain) :]
    return database_url


def _config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "pixlive:migrations")
    # Percent signs in passwords would otherwise be read as interpolation by configparser.
    config.set_main_option("sqlalchemy.url", alembic_url(database_url).replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision that this code knows."""
    head = ScriptDirectory.from_config(_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def _current(database_url: str) -> str | None:
    """The database's revision now; None when it has no schema yet."""
    seen: list[str | None] = []

    def read(rev: object, context: MigrationContext) -> list[object]:
        seen.append(context.get_current_revision())
        return []

    config = _config(database_url)
    script = ScriptDirectory.from_config(config)
    with EnvironmentContext(config, script, fn=read):
        script.run_env()
    return seen[0] if seen else None


def upgrade(database_url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Brings the schema to `revision`; returns the revisions before and after, so that
    the caller can say what it did (None: there was no schema)."""
    if database_url.startswith("sqlite"):
        # As the server does on start: a new SQLite file may live in a new directory.
        from pixlive.adapters.sqlite_connection import sqlite_path

        try:
            path = sqlite_path(database_url)
        except ValueError:  # a form we do not know (e.g. in-memory): Alembic will say
            path = ":memory:"
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    before = _current(database_url)
    command.upgrade(_config(database_url), revision)
    return before, _current(database_url)
