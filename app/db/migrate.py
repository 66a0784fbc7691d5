"""Bring a database to the newest schema with Alembic (`trainyard migrate`).

The migrations ship inside this package (`app/db/migrations/`), so an installed wheel finds
them: the Alembic configuration is built here from that path, with no alembic.ini. For
`alembic revision` in a checkout, pyproject.toml's `[tool.alembic]` names the same folder.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.db.session import make_engine

MIGRATIONS = Path(__file__).resolve().with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def schema_revisions(database_url: str) -> tuple[set[str], set[str]]:
    """(the database's current revisions, the newest ones shipped here): equal when migrated."""
    heads = set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    return current, heads
