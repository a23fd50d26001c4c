"""Alembic environment: always online, on the connection handed in by
:func:`tradercoin.store.migrate.upgrade` (inside its transaction)."""

from __future__ import annotations

from alembic import context

from tradercoin.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `tradercoin db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
