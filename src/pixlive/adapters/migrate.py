"""`pixlive migrate`: bring the schema to the newest revision with Alembic."""

from pathlib import Path

from alembic import command
from alembic.config import Config


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


def upgrade(database_url: str, revision: str = "head") -> None:
    if database_url.startswith("sqlite"):
        # As the server does on start: a new SQLite file may live in a new directory.
        from pixlive.adapters.sqlite import sqlite_path

        try:
            path = sqlite_path(database_url)
        except ValueError:  # a form we do not know (e.g. in-memory): Alembic will say
            path = ":memory:"
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", "pixlive:migrations")
    # Percent signs in passwords would otherwise be read as interpolation by configparser.
    config.set_main_option("sqlalchemy.url", alembic_url(database_url).replace("%", "%%"))
    command.upgrade(config, revision)
