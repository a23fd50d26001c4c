"""The store's page query by side and creation time, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

from tradercoin.orders import OrderType, Side, new_order
from tradercoin.store import Store, User

T0 = 1_764_720_000_000


async def test_side_and_span_filter_in_sql(store: Store, alice: User, bob: User) -> None:
    changes = [
        new_order(
            user_id=user.id,
            symbol="BTCUSDT",
            side=Side.SELL if i % 2 else Side.BUY,
            type=OrderType.MARKET,
            quantity=Decimal("0.01"),
            price=None,
            time_in_force=None,
            client_order_id=f"{user.id}-{i}",
            now=T0 + i * 1000,
        )
        for user in (alice, bob)
        for i in range(10)
    ]
    await store.apply(changes)
    sells = await store.list_orders(alice.id, side=Side.SELL, page_size=100)
    assert sells.total == 5 and {o.side for o in sells.items} == {Side.SELL}
    span = await store.list_orders(alice.id, since=T0 + 2000, until=T0 + 6000, page_size=100)
    assert [o.created_at - T0 for o in span.items] == [5000, 4000, 3000, 2000]
    both = await store.list_orders(alice.id, side=Side.BUY, since=T0 + 3000, page_size=2)
    assert both.total == 3 and [o.created_at - T0 for o in both.items] == [8000, 6000]
    until = await store.list_orders(alice.id, until=T0 + 1000)
    assert [o.client_order_id for o in until.items] == [f"{alice.id}-0"]
    assert (await store.list_orders(alice.id, since=T0 + 10_000)).total == 0
