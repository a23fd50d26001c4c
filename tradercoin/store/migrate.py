"""Alembic, run programmatically on a connection we own (no alembic.ini needed).

The migration scripts ship inside the package (``tradercoin/store/migrations``). An upgrade
runs in one transaction on PostgreSQL and on SQLite alike (the engine emits an explicit
``BEGIN``), so a failed upgrade leaves nothing half-written.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

__all__ = ["alembic_config", "current_revision", "head_revision", "upgrade"]

# Alembic announces each of its plugins at INFO on first use: noise in every CLI run.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "tradercoin.store:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: sa.Connection, revision: str = "head") -> str | None:
    """Upgrade to ``revision`` inside the caller's transaction; returns the new revision."""
    command.upgrade(alembic_config(connection), revision)
    return current_revision(connection)


def current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
