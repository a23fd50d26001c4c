"""Alembic, run programmatically on a connection we own (no alembic.ini needed).

The migration scripts ship inside the package (``tradercoin/store/migrations``). An upgrade
runs in one transaction on PostgreSQL and on SQLite alike (the engine emits an explicit
``BEGIN``), so a failed upgrade leaves nothing half-written. Alembic's own INFO chatter
(plugins, "Context impl") is turned down; an upgrade that changes the revision is logged here.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["alembic_config", "current_revision", "head_revision", "upgrade"]

log = logging.getLogger(__name__)
MIGRATION_LOCK = 0x7472_6164  # "trad": the advisory lock key of migrations
# Alembic keeps the running migration in module globals (``alembic.context``): two upgrades in
# one process at once, even of different databases, would run on each other's connections.
_ALEMBIC = threading.Lock()
for _name in ("alembic.runtime.plugins", "alembic.runtime.migration"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def alembic_config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "tradercoin.store:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: sa.Connection, revision: str = "head") -> str | None:
    """Upgrade to ``revision`` inside the caller's transaction; returns the new revision.

    On PostgreSQL a transaction-scoped advisory lock serializes instances that start at once
    (SQLite's ``BEGIN IMMEDIATE`` already does); within one process a lock serializes
    Alembic itself, which is not thread-safe.
    """
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    with _ALEMBIC:
        before = current_revision(connection)
        command.upgrade(alembic_config(connection), revision)
        after = current_revision(connection)
    if after != before:
        log.info("database migrated from revision %s to %s", before, after)
    return after


def current_revision(connection: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
