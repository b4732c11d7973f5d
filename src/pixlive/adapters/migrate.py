"""`pixlive migrate`: bring the schema to the newest revision with Alembic."""

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
    config = Config()
    config.set_main_option("script_location", "pixlive:migrations")
    # Percent signs in passwords would otherwise be read as interpolation by configparser.
    config.set_main_option("sqlalchemy.url", alembic_url(database_url).replace("%", "%%"))
    command.upgrade(config, revision)
