"""Revision 0004 (reduce-only on entry): orders and stored events written before it read as
not reduce-only, and a reduce-only order written after it keeps the flag."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from tradercoin.orders import OrderChange
from tradercoin.store.db import Database
from tradercoin.store.events import events_since
from tradercoin.store.migrate import upgrade
from tradercoin.store.orders import get_order, write_changes
from tradercoin.store.schema import order_events

# An order_update payload as the service stored it before reduce_only existed.
OLD_PAYLOAD = {
    "order_id": 10, "timestamp": 0, "id": 10, "symbol": "BTCUSDT", "side": "SELL",
    "type": "MARKET", "status": "filled", "quantity": "1", "price": None,
    "filled_quantity": "1", "avg_price": "100", "time_in_force": None,
    "client_order_id": "c1", "exchange_order_id": 500, "created_at": 0, "updated_at": 0,
    "exchange_update_time": 0, "note": None,
}  # fmt: skip


def _seed_at_0003(conn: sa.Connection) -> None:
    upgrade(conn, "0003")
    conn.execute(
        sa.text(
            "INSERT INTO users (id, username, role, password_hash, created_at) "
            "VALUES (1, 'alice', 'user', 'x', 0)"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO orders (id, user_id, symbol, side, type, status, quantity, "
            "filled_quantity, avg_price, client_order_id, exchange_order_id, created_at, "
            "updated_at, exchange_update_time) VALUES "
            "(10, 1, 'BTCUSDT', 'SELL', 'MARKET', 'filled', '1', '1', '100', 'c1', 500, 0, 0, 0)"
        )
    )
    conn.execute(
        order_events.insert(),
        {"user_id": 1, "seq": 1, "order_id": 10, "payload": OLD_PAYLOAD, "created_at": 0},
    )


async def test_orders_and_events_from_before_0004_are_not_reduce_only(db_url: str) -> None:
    db = Database(db_url)
    try:
        await db.write(_seed_at_0003)
        await db.write(upgrade)
        old = await db.read(get_order, 1, 10)
        assert old is not None and old.reduce_only is False
        [event] = await db.read(events_since, 1, 0, 10)
        assert event.order == old
        fresh = dataclasses.replace(old, id=None, client_order_id="c2", reduce_only=True)
        [stored] = await db.write(write_changes, [OrderChange(before=None, after=fresh)])
        again = await db.read(get_order, 1, stored.id)
        assert again is not None and again.reduce_only is True
    finally:
        await db.dispose()
