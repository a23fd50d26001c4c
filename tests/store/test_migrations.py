"""Migrations: up from empty, idempotent, transactional (nothing half-written)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
import trio

from tradercoin.store.db import Database
from tradercoin.store.migrate import current_revision, head_revision, upgrade
from tradercoin.store.schema import metadata


def _tables(conn: sa.Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


async def test_upgrade_from_empty_creates_every_table(db_url: str) -> None:
    db = Database(db_url)
    try:
        assert await db.read(_tables) == set()
        assert await db.write(upgrade) == head_revision()
        assert await db.read(_tables) == set(metadata.tables) | {"alembic_version"}
        assert await db.write(upgrade) == head_revision()  # a second run changes nothing
        assert await db.read(current_revision) == head_revision()
    finally:
        await db.dispose()


async def test_failed_upgrade_leaves_nothing_behind(db_url: str) -> None:
    def upgrade_then_fail(conn: sa.Connection) -> None:
        upgrade(conn)
        raise RuntimeError("boom after the DDL")

    db = Database(db_url)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            await db.write(upgrade_then_fail)
        assert await db.read(_tables) == set()
        assert await db.read(current_revision) is None
    finally:
        await db.dispose()


async def test_migrated_schema_matches_the_tables(db_url: str) -> None:
    def indexes(conn: sa.Connection) -> dict[str, set[str]]:
        inspector = sa.inspect(conn)
        return {t: {i["name"] or "" for i in inspector.get_indexes(t)} for t in metadata.tables}

    db = Database(db_url)
    try:
        await db.write(upgrade)
        found = await db.read(indexes)
        assert {"ix_orders_user_newest", "ix_orders_user_pending"} <= found["orders"]
        assert "ix_order_events_created_at" in found["order_events"]
    finally:
        await db.dispose()


async def test_migrations_build_what_schema_py_declares(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    def not_desc_index(obj: object, name: str | None, kind: str, *_: object) -> bool:
        return not (kind == "index" and name == "ix_orders_user_newest")  # DESC: checked above

    def diff(conn: sa.Connection) -> list[object]:
        upgrade(conn)
        context = MigrationContext.configure(conn, opts={"include_object": not_desc_index})
        return list(compare_metadata(context, metadata))

    db = Database(db_url)
    try:
        assert await db.write(diff) == []
    finally:
        await db.dispose()


async def test_instances_starting_at_once_migrate_once(db_url: str) -> None:
    databases = [Database(db_url) for _ in range(3)]
    revisions: list[str | None] = []

    async def migrate(db: Database) -> None:
        revisions.append(await db.write(upgrade))

    try:
        async with trio.open_nursery() as nursery:
            for db in databases:
                nursery.start_soon(migrate, db)
        assert revisions == [head_revision()] * 3
    finally:
        for db in databases:
            await db.dispose()


async def test_different_databases_migrate_at_once_in_one_process(tmp_path: Path) -> None:
    databases = [Database(f"sqlite:///{tmp_path / f'db{n}.sqlite'}") for n in range(4)]
    try:
        async with trio.open_nursery() as nursery:
            for db in databases:
                nursery.start_soon(db.write, upgrade)
        for db in databases:
            assert await db.read(current_revision) == head_revision()
    finally:
        for db in databases:
            await db.dispose()
