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


async def test_0002_binds_existing_fills_to_their_orders(db_url: str) -> None:
    """Rows written under revision 0001 survive 0002: each fill is bound to its order
    (by user, symbol, exchange order id); one that matches no order is kept unbound; and
    afterwards the same trade id may belong to two orders (both sides of a trade)."""

    def seed_at_0001(conn: sa.Connection) -> None:
        upgrade(conn, "0001")
        conn.execute(
            sa.text(
                "INSERT INTO users (id, username, role, password_hash, created_at) "
                "VALUES (1, 'alice', 'user', 'x', 0), (2, 'bob', 'user', 'x', 0)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO orders (id, user_id, symbol, side, type, status, quantity, "
                "filled_quantity, client_order_id, exchange_order_id, created_at, updated_at, "
                "exchange_update_time) VALUES "
                "(10, 1, 'BTCUSDT', 'BUY', 'MARKET', 'filled', '1', '1', 'c1', 500, 0, 0, 0)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO fills (user_id, symbol, trade_id, exchange_order_id, price, "
                "quantity, commission, commission_asset, time) VALUES "
                "(1, 'BTCUSDT', 7, 500, '100', '1', '0.04', 'USDT', 1), "
                "(1, 'BTCUSDT', 8, 999, '100', '1', '0.04', 'USDT', 1)"
            )
        )

    def rows(conn: sa.Connection) -> list[tuple[object, ...]]:
        query = "SELECT trade_id, order_id, realized_pnl, maker FROM fills ORDER BY trade_id"
        return [tuple(r) for r in conn.execute(sa.text(query))]

    def other_side(conn: sa.Connection) -> None:
        conn.execute(
            sa.text(
                "INSERT INTO fills (user_id, order_id, symbol, trade_id, exchange_order_id, "
                "price, quantity, commission, commission_asset, time) VALUES "
                "(2, 11, 'BTCUSDT', 7, 501, '100', '1', '0.02', 'USDT', 1)"
            )
        )

    db = Database(db_url)
    try:
        await db.write(seed_at_0001)
        await db.write(upgrade)
        assert await db.read(rows) == [(7, 10, "0", False), (8, None, "0", False)]
        await db.write(other_side)
        assert len(await db.read(rows)) == 3
    finally:
        await db.dispose()
